/* bilaf selection report: renders the JSON in #bilaf-data. Plain JS, no network. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("bilaf-data").textContent);
  var S = D.summary, P = D.picks, C = D.classes, T = D.truth, M = D.map;
  var B = P.i.length;
  var ROLE = D.roles;  // code -> name
  var ROLE_ORDER = { labeled: 0, core: 1, boundary: 2, selected: 3 };
  var state = { role: "all", cls: -2, q: "", group: !!C, truth: false, page: 0, size: D.page_size || 200,
                colour: C ? "pseudo" : (T ? "truth" : "none") };

  // -- helpers -------------------------------------------------------------------------------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function num(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
  function pct(a, b) { return b ? (100 * a / b).toFixed(a / b < 0.1 ? 1 : 0) + "%" : "–"; }
  function secs(v) { return v < 1 ? (v * 1000).toFixed(0) + " ms" : v < 120 ? v.toFixed(1) + " s" : (v / 60).toFixed(1) + " min"; }
  function idOf(row) { var s = D.ids[String(row)]; return s === undefined ? String(row) : s; }
  function clsName(c) { return c >= 0 ? "P" + c : "–"; }
  function clsColour(c) { return C && c >= 0 && c < C.n ? C.colors[c] : "#98a2b3"; }
  function truthName(y) { return T && y >= 0 && y < T.names.length ? T.names[y] : "unknown"; }
  function light(hex) {  // a pale colour: dark text on it
    var v = parseInt(hex.slice(1), 16), r = (v >> 16) & 255, g = (v >> 8) & 255, b = v & 255;
    return 0.299 * r + 0.587 * g + 0.114 * b > 165;
  }
  function swatch(col) { return el("span", { cls: "swatch", style: "background:" + col }); }

  function media(row, small) {
    var m = D.media[String(row)];
    if (D.kind === "text") {
      return el("div", { cls: "text", title: m || "" , text: m === undefined ? "(text not found: " + idOf(row) + ")" : m });
    }
    if (D.kind !== "image") return small ? el("div", { cls: "thumb missing", text: idOf(row) }) : null;
    if (m === undefined) return el("div", { cls: "thumb missing", text: "image not found" });
    return el("div", { cls: "thumb" },
      [el("img", { src: m, alt: idOf(row), loading: "lazy", decoding: "async", title: small ? idOf(row) : null })]);
  }

  // -- header and summary -------------------------------------------------------------------
  document.getElementById("title").textContent = D.title;
  var sub = ["bilaf selection report", S.created ? "selected " + S.created.replace("T", " ").replace("+00:00", " UTC") : null,
             S.manifest ? "manifest " + S.manifest : "no manifest"];
  document.getElementById("subtitle").textContent = sub.filter(Boolean).join(" · ");

  function tile(k, v, small) {
    return el("div", { cls: "tile" }, [el("div", { cls: "k", text: k }),
      el("div", { cls: "v" }, [String(v), small ? el("small", { text: " " + small }) : null])]);
  }
  (function summary() {
    var box = document.getElementById("summary-tiles");
    var total = S.timings.filter(function (t) { return t[0] === "total"; })[0];
    box.appendChild(tile("picks", num(S.n_picks), "of " + num(S.pool) + " (" + pct(S.n_picks, S.pool) + ")"));
    box.appendChild(tile("method", S.method));
    box.appendChild(tile("budget", S.budget));
    if (S.k !== null && S.k !== undefined) box.appendChild(tile("K (pseudo-classes)", num(S.k)));
    box.appendChild(tile("seed", S.seed === null || S.seed === undefined ? "none" : S.seed));
    Object.keys(S.roles).forEach(function (r) { box.appendChild(tile(r + " picks", num(S.roles[r]))); });
    if (C) box.appendChild(tile("removed as noise", num(S.n_removed), pct(S.n_removed, S.pool)));
    if (total) box.appendChild(tile("time", secs(total[1])));
    var dl = document.getElementById("summary-more");
    function kv(title, pairs) {
      if (!pairs.length) return null;
      var d = el("dl", { cls: "kv" });
      pairs.forEach(function (p) {
        d.appendChild(el("dt", { text: p[0] }));
        d.appendChild(el("dd", { text: String(p[1]), title: String(p[1]) }));
      });
      return el("div", null, [el("h3", { text: title }), d]);
    }
    var par = Object.keys(S.params).map(function (k) { return [k, S.params[k] === null ? "default" : S.params[k]]; });
    var der = Object.keys(S.derived).map(function (k) { return [k, S.derived[k]]; });
    var ver = S.versions ? Object.keys(S.versions).map(function (k) { return [k, S.versions[k]]; }) : [];
    var cols = el("div", { cls: "cols" }, [
      kv("Timings", S.timings.map(function (t) { return [t[0], secs(t[1])]; })),
      kv("Hashes", S.hashes),
      kv("Parameters", par.concat(der)),
      kv("Versions", ver.concat(S.command ? [["command", S.command.join(" ")]] : []))]);
    dl.appendChild(cols);
    if (S.notes.length) dl.appendChild(el("ul", { cls: "notes" }, S.notes.map(function (n) { return el("li", { text: n }); })));
    if (D.missing) dl.appendChild(el("p", { cls: "warnline", text: D.missing }));
  })();

  // -- the map --------------------------------------------------------------------------------
  var canvas = document.getElementById("map"), ctx = canvas.getContext("2d"), tip = document.getElementById("tip");
  var W = 960, H = 600, PAD = 18, picksXY = [];
  function mx(v) { return PAD + v / 1000 * (W - 2 * PAD); }
  function my(v) { return PAD + v / 1000 * (H - 2 * PAD); }
  function colourOf(cPseudo, cTruth) {
    if (state.colour === "truth" && T) return cTruth >= 0 ? T.colors[cTruth] : "#98a2b3";
    if (state.colour === "pseudo" && C) return cPseudo >= 0 ? C.colors[cPseudo] : "#98a2b3";
    return "#4a6fa5";
  }
  function star(x, y, r) {
    ctx.beginPath();
    for (var k = 0; k < 10; k++) {
      var a = Math.PI / 2 + k * Math.PI / 5, rr = k % 2 ? r * 0.45 : r;
      ctx.lineTo(x + rr * Math.cos(a), y - rr * Math.sin(a));
    }
    ctx.closePath();
  }
  function drawMap() {
    var dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr; canvas.height = H * dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    var n = M.px.length, r = n > 20000 ? 1.1 : n > 5000 ? 1.5 : 2.2;
    ctx.globalAlpha = 0.42;
    for (var j = 0; j < n; j++) {
      var cp = M.pc ? M.pc[j] : -1, ct = M.pt ? M.pt[j] : -1;
      var x = mx(M.px[j]), y = my(M.py[j]);
      if (M.pc && cp < 0) {  // removed as noise
        ctx.globalAlpha = 0.75; ctx.strokeStyle = "#475467"; ctx.lineWidth = 1.1; ctx.beginPath();
        ctx.moveTo(x - 2.6, y - 2.6); ctx.lineTo(x + 2.6, y + 2.6);
        ctx.moveTo(x + 2.6, y - 2.6); ctx.lineTo(x - 2.6, y + 2.6); ctx.stroke();
        ctx.globalAlpha = 0.42;
        continue;
      }
      ctx.fillStyle = colourOf(cp, ct);
      ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
    ctx.globalAlpha = 1;
    var scale = Math.max(0.45, Math.min(1, Math.sqrt(150 / Math.max(B, 1))));
    picksXY = [];
    var order = [], cores = [];
    for (var i = 0; i < B; i++) (ROLE[P.r[i]] === "core" ? cores : order).push(i);
    order = order.concat(cores);  // cores drawn last, on top
    order.forEach(function (i) {
      var x = mx(M.kx[i]), y = my(M.ky[i]), role = ROLE[P.r[i]];
      picksXY.push([x, y, i]);
      ctx.fillStyle = colourOf(P.c[i], P.y ? P.y[i] : -1);
      ctx.strokeStyle = "#1f2430"; ctx.lineWidth = 0.9;
      if (role === "core") { star(x, y, 8.5 * scale + 2); ctx.fill(); ctx.stroke(); }
      else if (role === "labeled") {
        var s = 4 * scale + 1;
        ctx.fillStyle = "#fff"; ctx.fillRect(x - s, y - s, 2 * s, 2 * s); ctx.strokeRect(x - s, y - s, 2 * s, 2 * s);
      }
      else { ctx.beginPath(); ctx.arc(x, y, 4.2 * scale + 1, 0, 2 * Math.PI); ctx.fill(); ctx.stroke(); }
    });
  }
  function pickAt(ev) {
    var rect = canvas.getBoundingClientRect();
    var x = (ev.clientX - rect.left) * W / rect.width, y = (ev.clientY - rect.top) * H / rect.height;
    var best = -1, bd = 81;
    for (var k = 0; k < picksXY.length; k++) {
      var dx = picksXY[k][0] - x, dy = picksXY[k][1] - y, d = dx * dx + dy * dy;
      if (d <= bd) { bd = d; best = picksXY[k][2]; }
    }
    return best;
  }
  canvas.addEventListener("mousemove", function (ev) {
    var i = pickAt(ev);
    if (i < 0) { tip.style.display = "none"; return; }
    tip.innerHTML = "";
    var row = P.i[i];
    tip.appendChild(D.kind === "image" && D.media[String(row)] !== undefined ? el("img", { src: D.media[String(row)], alt: "" }) :
      D.kind === "text" ? el("div", { cls: "text", text: D.media[String(row)] || "" }) : null);
    tip.appendChild(el("div", null, [el("span", { cls: "chip " + ROLE[P.r[i]], text: ROLE[P.r[i]] }),
      " #" + (i + 1) + (P.c[i] >= 0 ? " · " + clsName(P.c[i]) : "")]));
    tip.appendChild(el("div", { cls: "id", text: idOf(row) }));
    tip.style.display = "block";
    var tx = Math.min(ev.clientX + 14, window.innerWidth - 300);
    tip.style.left = tx + "px"; tip.style.top = (ev.clientY + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("click", function (ev) { var i = pickAt(ev); if (i >= 0) showPick(i); });

  (function legend() {
    var box = document.getElementById("map-legend");
    function mark(kind, fill) {
      var svg = '<svg width="18" height="18" viewBox="0 0 18 18">';
      if (kind === "core") svg += '<polygon points="9,1 11.2,6.5 17,6.8 12.5,10.6 14,16.5 9,13.2 4,16.5 5.5,10.6 ' +
        '1,6.8 6.8,6.5" fill="' + fill + '" stroke="#1f2430"/>';
      else if (kind === "labeled") svg += '<rect x="4" y="4" width="10" height="10" fill="#fff" stroke="#1f2430"/>';
      else if (kind === "noise") svg += '<path d="M5 5L13 13M13 5L5 13" stroke="#667085" stroke-width="1.4"/>';
      else if (kind === "pool") svg += '<rect x="6.5" y="6.5" width="5" height="5" fill="' + fill + '" opacity=".5"/>';
      else svg += '<circle cx="9" cy="9" r="5" fill="' + fill + '" stroke="#1f2430"/>';
      var span = el("span"); span.innerHTML = svg + "</svg>"; return span.firstChild;
    }
    var counts = {};
    P.r.forEach(function (r) { counts[ROLE[r]] = (counts[ROLE[r]] || 0) + 1; });
    var drawn = M.drawn < M.n_pool ? " (" + num(M.drawn) + " of " + num(M.n_pool) + " drawn)" : "";
    box.appendChild(el("div", { cls: "row" }, [mark("pool", "#4a6fa5"), "pool sample" + drawn]));
    if (M.pc && M.pc.some(function (c) { return c < 0; })) box.appendChild(el("div", { cls: "row" }, [mark("noise"), "removed as noise"]));
    ["core", "boundary", "labeled", "selected"].forEach(function (r) {
      if (counts[r]) box.appendChild(el("div", { cls: "row" }, [mark(r, "#d0d5dd"), r + " pick (" + num(counts[r]) + ")"]));
    });
    var opts = [];
    if (C) opts.push(["pseudo", "pseudo-class"]);
    if (T) opts.push(["truth", "true label (benchmark view)"]);
    opts.push(["none", "one colour"]);
    var sel = el("select", { id: "map-colour", onchange: function () { state.colour = sel.value; drawMap(); truthLegend(); } },
      opts.map(function (o) { return el("option", { value: o[0], text: o[1] }); }));
    sel.value = state.colour;
    box.appendChild(el("label", { "for": "map-colour", text: "colour by" }));
    box.appendChild(sel);
    var tl = el("div", { id: "truth-legend" });
    box.appendChild(tl);
    function truthLegend() {
      tl.innerHTML = "";
      if (state.colour === "truth" && T && T.names.length <= 30)
        T.names.forEach(function (nm, y) { tl.appendChild(el("div", { cls: "row" }, [swatch(T.colors[y]), nm])); });
      else if (state.colour === "pseudo" && C)
        tl.appendChild(el("p", { cls: "caption", style: "text-align:left", text: num(C.n) + " pseudo-classes, one colour each" }));
    }
    truthLegend();
    box.appendChild(el("p", { cls: "caption", style: "text-align:left", text: "Hover a pick to see it; click to find it in the gallery." }));
  })();
  document.getElementById("map-title").textContent = "Map of the pool (" + ({ pca: "PCA", tsne: "t-SNE", umap: "UMAP" }[M.projection] || M.projection) + ")";
  drawMap();

  // -- coverage -------------------------------------------------------------------------------
  (function coverage() {
    var box = document.getElementById("coverage-body");
    if (!C) {
      box.appendChild(el("p", { cls: "lead", text: "This method forms no pseudo-classes; the picks are shown in selection order." }));
    } else {
      var lead = C.without.length ?
        el("p", { cls: "warnline", text: num(C.without.length) + " of " + num(C.n) + " pseudo-classes have no pick: " +
          C.without.slice(0, 40).map(clsName).join(", ") + (C.without.length > 40 ? ", …" : "") }) :
        el("p", { cls: "okline", text: "Every one of the " + num(C.n) + " pseudo-classes has at least one pick." });
      box.appendChild(lead);
      var tiles = el("div", { cls: "ctiles" });
      for (var c = 0; c < C.n; c++) {
        (function (c) {
          var t = el("button", { cls: "ctile" + (C.picks[c] ? "" : " zero") + (light(C.colors[c]) ? " light" : ""),
            style: "background:" + C.colors[c],
            title: clsName(c) + ": " + C.picks[c] + " pick(s) from " + num(C.size[c]) + " samples" +
              (C.top && C.top[c] >= 0 ? " · mostly " + truthName(C.top[c]) + " (" + Math.round(100 * C.share[c]) + "%)" : "") +
              " — click to show in the gallery",
            onclick: function () {
              state.cls = c; state.role = "all"; state.page = 0; syncToolbar(); renderGallery();
              document.getElementById("gallery").scrollIntoView();
            } },
            [el("b", { text: String(C.picks[c]) }), el("span", { text: clsName(c) })]);
          tiles.appendChild(t);
        })(c);
      }
      box.appendChild(el("p", { cls: "caption", style: "text-align:left;margin:0 0 6px",
        text: "Picks per pseudo-class (big number), pseudo-class below; click one to see its picks." }));
      box.appendChild(tiles);
    }
    if (T) {
      var det = el("details", { cls: "more" }, [el("summary", { text: "Benchmark view: picks per true class" })]);
      det.appendChild(el("p", { cls: "caption", style: "text-align:left", text: "True labels come from the feature file; " +
        "the selection never used them. Bar: share of the picks; tick: share of the pool." }));
      var bars = el("div", { cls: "bars" });
      var tp = T.pool.reduce(function (a, b) { return a + b; }, 0), tk = T.picks.reduce(function (a, b) { return a + b; }, 0);
      var mxs = 0;
      T.names.forEach(function (nm, y) { mxs = Math.max(mxs, T.picks[y] / Math.max(tk, 1), T.pool[y] / Math.max(tp, 1)); });
      T.names.forEach(function (nm, y) {
        var w = 100 * (T.picks[y] / Math.max(tk, 1)) / Math.max(mxs, 1e-9);
        var u = 100 * (T.pool[y] / Math.max(tp, 1)) / Math.max(mxs, 1e-9);
        bars.appendChild(el("span", null, [swatch(T.colors[y]), nm]));
        bars.appendChild(el("div", { cls: "bar" }, [el("i", { style: "width:" + w.toFixed(1) + "%;background:" + T.colors[y] }),
          el("u", { style: "left:" + u.toFixed(1) + "%" })]));
        bars.appendChild(el("span", { cls: T.picks[y] ? "" : "warnline", text: num(T.picks[y]) + " (" + pct(T.picks[y], tk) + ")" }));
      });
      det.appendChild(bars);
      var none = T.names.filter(function (nm, y) { return !T.picks[y] && T.pool[y]; });
      if (none.length) det.appendChild(el("p", { cls: "warnline", text: "True classes without a pick: " + none.join(", ") }));
      box.appendChild(det);
    }
  })();

  // -- gallery --------------------------------------------------------------------------------
  var gal = document.getElementById("gallery-body");
  var pagerTop = document.getElementById("pager-top"), pagerBottom = document.getElementById("pager-bottom");
  if (D.kind === "text") document.getElementById("gallery").classList.add("text-pool");
  var toolbar = document.getElementById("toolbar");
  var roleSeg = el("div", { cls: "seg" });
  var roleNames = ["all"].concat(["core", "boundary", "labeled", "selected"].filter(function (r) { return S.roles[r]; }));
  roleNames.forEach(function (r) {
    roleSeg.appendChild(el("button", { "data-role": r, text: r === "all" ? "all (" + num(B) + ")" : r + " (" + num(S.roles[r]) + ")",
      onclick: function () { state.role = r; state.page = 0; syncToolbar(); renderGallery(); } }));
  });
  toolbar.appendChild(roleSeg);
  var clsSel = null;
  if (C) {
    clsSel = el("select", { "aria-label": "pseudo-class", onchange: function () { state.cls = +clsSel.value; state.page = 0; renderGallery(); } },
      [el("option", { value: "-2", text: "every pseudo-class" })].concat(
        Array.from({ length: C.n }, function (_, c) { return el("option", { value: String(c), text: clsName(c) + " (" + C.picks[c] + ")" }); })));
    toolbar.appendChild(clsSel);
    var grp = el("input", { type: "checkbox", id: "group", onchange: function () { state.group = grp.checked; state.page = 0; renderGallery(); } });
    grp.checked = state.group;
    toolbar.appendChild(el("label", null, [grp, " group by pseudo-class"]));
  }
  var search = el("input", { type: "search", placeholder: "filter by id…",
    oninput: function () { state.q = search.value.toLowerCase(); state.page = 0; renderGallery(); } });
  toolbar.appendChild(search);
  if (T) {
    var tru = el("input", { type: "checkbox", id: "truth", onchange: function () { state.truth = tru.checked; renderGallery(); } });
    toolbar.appendChild(el("label", { title: "benchmark view: the labels were not used by the selection" }, [tru, " show true labels"]));
  }
  function syncToolbar() {
    Array.prototype.forEach.call(roleSeg.children, function (b) { b.classList.toggle("on", b.getAttribute("data-role") === state.role); });
    if (clsSel) clsSel.value = String(state.cls);
  }

  function filtered() {
    var out = [];
    for (var i = 0; i < B; i++) {
      if (state.role !== "all" && ROLE[P.r[i]] !== state.role) continue;
      if (state.cls !== -2 && P.c[i] !== state.cls) continue;
      if (state.q && idOf(P.i[i]).toLowerCase().indexOf(state.q) < 0) continue;
      out.push(i);
    }
    if (state.group && C) out.sort(function (a, b) {
      var ca = P.c[a] < 0 ? 1e9 : P.c[a], cb = P.c[b] < 0 ? 1e9 : P.c[b];
      return ca - cb || ROLE_ORDER[ROLE[P.r[a]]] - ROLE_ORDER[ROLE[P.r[b]]] || a - b;
    });
    return out;
  }

  function coreFigure(c, caption) {
    var row = C && c >= 0 && c < C.n ? C.core[c] : -1;
    var inner = row >= 0 ? media(row, true) : el("div", { cls: "thumb missing", text: "no core" });
    return el("figure", { title: "core of " + caption + (row >= 0 ? ": " + idOf(row) : "") },
      [inner, el("figcaption", null, [swatch(clsColour(c)), caption])]);
  }

  function card(i) {
    var role = ROLE[P.r[i]], row = P.i[i];
    var head = el("div", { cls: "head" }, [el("span", { cls: "chip " + role, text: role }),
      P.c[i] >= 0 && !(state.group && C) ? el("span", null, [swatch(clsColour(P.c[i])), clsName(P.c[i])]) : null,
      el("span", { cls: "rank", title: "rank in the selection (1 = picked first)", text: "#" + num(i + 1) })]);
    var kids = [head, media(row, false), el("div", { cls: "id", title: idOf(row), text: idOf(row) })];
    if (P.s[i] !== null && P.s[i] !== undefined) {
      kids.push(el("div", { cls: "score", title: D.score.name + (D.score.hint ? ": " + D.score.hint : "") },
        [el("span", { cls: "k", text: D.score.name === "score" ? "score " : D.score.name.replace(" score", "") + " score " }),
         el("b", { text: Number(P.s[i]).toFixed(3) })]));
    }
    if (state.truth && P.y) kids.push(el("div", { cls: "truth" }, [swatch(T.colors[P.y[i]] || "#98a2b3"), "true: " + truthName(P.y[i])]));
    if (role === "boundary" && C && P.o[i] >= 0) {
      kids.push(el("div", { cls: "between", title: "between pseudo-class " + P.c[i] + " and " + P.o[i] }, [
        coreFigure(P.c[i], clsName(P.c[i])), el("span", { cls: "arrow", text: "↔" }), coreFigure(P.o[i], clsName(P.o[i]))]));
      kids.push(el("div", { cls: "caption", text: "between the cores of " + clsName(P.c[i]) + " and " + clsName(P.o[i]) }));
    }
    return el("div", { cls: "card " + role, id: "pick-" + i, "data-rank": String(i + 1) }, kids);
  }

  function groupHeader(c, cont, shownHere) {
    var kids = [el("h3", null, [c >= 0 ? "Pseudo-class " + c : "No pseudo-class"])];
    if (c >= 0) {
      var txt = num(C.picks[c]) + " pick" + (C.picks[c] === 1 ? "" : "s") + " of " + num(C.size[c]);
      if (state.truth && C.top && C.top[c] >= 0) txt += " · mostly " + truthName(C.top[c]) + " (" + Math.round(100 * C.share[c]) + "%)";
      if (cont) txt += " · continued";
      kids.push(el("span", { cls: "meta", text: txt,
        title: C.picks[c] + " picks from the " + C.size[c] + " pool samples of this pseudo-class" }));
    }
    return el("div", { cls: "group" }, kids);
  }

  function pager(box, total, pages) {
    box.innerHTML = "";
    if (!total) return;
    var a = state.page * state.size + 1, b = Math.min(total, (state.page + 1) * state.size);
    box.appendChild(el("button", { text: "‹ previous", disabled: state.page > 0 ? null : "", onclick: function () { go(state.page - 1); } }));
    box.appendChild(el("span", { text: "picks " + num(a) + "–" + num(b) + " of " + num(total) + " · page " + (state.page + 1) + " of " + pages }));
    box.appendChild(el("button", { text: "next ›", disabled: state.page < pages - 1 ? null : "", onclick: function () { go(state.page + 1); } }));
  }
  function go(p) { state.page = p; renderGallery(); document.getElementById("gallery").scrollIntoView(); }

  function renderGallery() {
    var items = filtered(), pages = Math.max(1, Math.ceil(items.length / state.size));
    if (state.page >= pages) state.page = pages - 1;
    gal.innerHTML = "";
    pager(pagerTop, items.length, pages); pager(pagerBottom, items.length, pages);
    if (!items.length) { gal.appendChild(el("div", { cls: "empty", text: "No pick matches these filters." })); return items; }
    var slice = items.slice(state.page * state.size, (state.page + 1) * state.size);
    var grouped = state.group && C, holder = el("div", { cls: grouped ? "groups" : "" }), grid = null, last = null;
    var prev = state.page > 0 ? items[state.page * state.size - 1] : -1;
    slice.forEach(function (i) {
      if (grouped && (grid === null || P.c[i] !== last)) {
        grid = el("div", { cls: "grid" });
        holder.appendChild(el("div", { cls: "gbox", style: "border-top-color:" + clsColour(P.c[i]) },
          [groupHeader(P.c[i], last === null && prev >= 0 && P.c[prev] === P.c[i]), grid]));
        last = P.c[i];
      }
      if (grid === null) { grid = el("div", { cls: "grid" }); holder.appendChild(grid); }
      grid.appendChild(card(i));
    });
    gal.appendChild(holder);
    document.getElementById("gallery-count").textContent = num(items.length);
    return items;
  }

  function showPick(i) {
    var items = filtered(), k = items.indexOf(i);
    if (k < 0) {  // filtered out: show every pick again
      state.role = "all"; state.cls = -2; state.q = ""; search.value = ""; syncToolbar();
      items = filtered(); k = items.indexOf(i);
    }
    state.page = Math.floor(k / state.size);
    renderGallery();
    var c = document.getElementById("pick-" + i);
    if (c) {
      c.scrollIntoView({ block: "center" }); c.classList.add("flash");
      setTimeout(function () { c.classList.remove("flash"); }, 1600);
    }
  }
  syncToolbar();
  renderGallery();

  // -- removed as noise -----------------------------------------------------------------------
  (function removed() {
    var sec = document.getElementById("removed");
    if (!C || !D.removed.n) {
      sec.parentNode.removeChild(sec); document.getElementById("toc-removed").style.display = "none"; return;
    }
    document.getElementById("removed-lead").textContent = num(D.removed.n) + " samples (" + pct(D.removed.n, S.pool) +
      " of the pool) were removed as noise before the boundary picks" +
      (D.removed.i.length < D.removed.n ? "; " + num(D.removed.i.length) + " of them, drawn at random, are shown." : ".");
    var grid = el("div", { cls: "grid" });
    D.removed.i.forEach(function (row) {
      grid.appendChild(el("div", { cls: "card" }, [media(row, true), el("div", { cls: "id", title: idOf(row), text: idOf(row) })]));
    });
    document.getElementById("removed-body").appendChild(grid);
  })();
  var lead = document.getElementById("gallery-lead");
  if (!C) lead.textContent = "In selection order (#1 = picked first).";
  else if (!S.roles.boundary) lead.textContent = "Grouped by pseudo-class (cluster); untick the box to see them in selection order.";
  document.getElementById("footer").textContent = "Made by bilaf " + ((S.versions && S.versions.bilaf) || "") +
    " · one self-contained file: no server, no network.";
  document.body.setAttribute("data-ready", "1");
})();
