"""The page's script and style sheet, inlined into every run page (page.py)."""

SCRIPT = r"""
(function () {
  var el = function (id) { return document.getElementById(id); };
  var read = function (id) { var n = el(id); return n ? JSON.parse(n.textContent) : null; };
  var D = read('report-data');
  var pad = function (n) { return (n < 10 ? '0' : '') + n; };
  var when = function (i) {
    var t = new Date((D.base + D.w[i] * 60) * 1000);
    return t.getUTCFullYear() + '-' + pad(t.getUTCMonth() + 1) + '-' + pad(t.getUTCDate()) + ' ' + pad(t.getUTCHours()) + ':' + pad(t.getUTCMinutes());
  };
  var fb = {}; if (D) D.fb.forEach(function (i) { fb[i] = 1; });
  var storyOf = {}; if (D) Object.keys(D.g).forEach(function (s) { D.g[s].forEach(function (i) { storyOf[i] = s; }); });
  var source = function (i) { return D.s.length && D.s[i] >= 0 ? D.src[D.s[i]] : ''; };
  function fillCard(card) {
    if (card.dataset.filled) return;
    card.dataset.filled = '1';
    var rows = D.g[card.dataset.story] || [];
    var box = document.createElement('div'); box.className = 'cardbody';
    var input = document.createElement('input'); input.type = 'search'; input.placeholder = 'filter these ' + rows.length + ' headlines';
    var count = document.createElement('span'); count.className = 'note';
    var list = document.createElement('ol');
    var toggle = document.createElement('button'); toggle.type = 'button'; toggle.className = 'order'; toggle.textContent = 'newest first';
    toggle.addEventListener('click', function () {
      var newest = toggle.textContent === 'newest first', items = Array.prototype.slice.call(list.children);
      items.sort(function (a, b) { return newest ? (D.w[+b.dataset.i] - D.w[+a.dataset.i]) : (+a.dataset.rank - +b.dataset.rank); });
      items.forEach(function (li) { list.appendChild(li); });
      toggle.textContent = newest ? 'core first' : 'newest first';
    });
    rows.forEach(function (i, rank) {
      var li = document.createElement('li');
      var tm = document.createElement('time'); tm.textContent = when(i) + (fb[i] ? ' (ingested)' : ''); li.appendChild(tm);
      var src = source(i);
      if (src) { var sp = document.createElement('span'); sp.className = 'src'; sp.textContent = src; li.appendChild(sp); }
      var url = D.u[i], t;
      if (url) { t = document.createElement('a'); t.href = url; t.rel = 'noopener noreferrer'; } else { t = document.createElement('span'); }
      t.textContent = D.t[i]; li.appendChild(t);
      li.dataset.text = (D.t[i] + ' ' + src).toLowerCase(); li.dataset.i = i; li.dataset.rank = rank;
      list.appendChild(li);
    });
    input.addEventListener('input', function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      for (var li = list.firstChild; li; li = li.nextSibling) { var ok = !q || li.dataset.text.indexOf(q) >= 0; li.hidden = !ok; shown += ok; }
      count.textContent = q ? ' ' + shown + ' of ' + rows.length : '';
    });
    box.appendChild(input); box.appendChild(toggle); box.appendChild(count); box.appendChild(list); card.appendChild(box);
  }
  document.querySelectorAll('details.card').forEach(function (c) {
    c.addEventListener('toggle', function () { if (c.open) fillCard(c); });
  });
  if (location.hash && location.hash.indexOf('#story-') === 0) {
    var row = document.querySelector(location.hash + ' details.card');
    if (row) { var tb = row.closest('tbody'); if (tb) tb.hidden = false; row.open = true; }
  }
  document.querySelectorAll('button.showmore').forEach(function (b) {
    b.addEventListener('click', function () { var tb = b.previousElementSibling.querySelector('tbody.more'); tb.hidden = !tb.hidden;
      b.textContent = tb.hidden ? b.dataset.label : 'show fewer stories'; });
    b.dataset.label = b.textContent;
  });
  if (!window.Plotly) return;  // each chart's place keeps its message
  document.documentElement.classList.add('has-plotly');
  var escHtml = function (s) { return s.replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); };
  var clip = function (s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; };
  function declutter(gd) {
    // keep labels in priority order where their real boxes overlap no kept one; hide the rest (they stay on hover)
    if (gd._declutter) return; gd._declutter = true;
    var anns = gd.layout.annotations || [], on = {};
    anns.forEach(function (a, i) { on['annotations[' + i + '].visible'] = true; });
    Plotly.relayout(gd, on).then(function () {
      var kept = [], off = {};
      var groups = Array.prototype.slice.call(gd.querySelectorAll('g.annotation'));
      groups.sort(function (a, b) { return (+a.dataset.index) - (+b.dataset.index); });
      groups.forEach(function (g) {
        var r = g.getBoundingClientRect();
        var hit = r.width === 0 || kept.some(function (k) { return !(r.right <= k.left || r.left >= k.right || r.bottom <= k.top || r.top >= k.bottom); });
        if (hit) off['annotations[' + g.dataset.index + '].visible'] = false; else kept.push(r);
      });
      return Object.keys(off).length ? Plotly.relayout(gd, off) : null;
    }).then(function () { gd._declutter = false; window.__mapLabelsReady = true; });
  }
  document.querySelectorAll('.plot[data-spec]').forEach(function (div) {
    var spec = read(div.dataset.spec), rowsOf = read('rows-' + div.id);
    if (rowsOf) rowsOf.forEach(function (rows, k) {
      spec.data[k].text = rows.map(function (i) {
        var s = storyOf[i], story = s !== undefined && D.n[s] ? D.n[s] : 'no story';
        return escHtml(clip(D.t[i], 100)) + '<br><span style="font-size:11px">' + when(i) + ' \u00b7 ' + escHtml(clip(story, 70)) + '</span>';
      });
    });
    Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true}).then(function () {
      if (div.id !== 'map') return;
      declutter(div);
      div.on('plotly_relayout', function (ev) {
        if (Object.keys(ev || {}).some(function (k) { return /^(xaxis|yaxis|autosize|width|height)/.test(k); })) declutter(div);
      });
      var timer; window.addEventListener('resize', function () { clearTimeout(timer); timer = setTimeout(function () { declutter(div); }, 300); });
    });
  });
})();
"""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.2em auto;max-width:1400px;color:#222;padding:0 1em;line-height:1.35}
h1{font-size:22px;margin:.2em 0} h2{margin-top:1.4em;font-size:19px;border-bottom:1px solid #ddd;padding-bottom:.2em} h3{font-size:16px;margin:1.1em 0 .3em}
table{border-collapse:collapse;width:100%} table.stories{table-layout:fixed} td,th{border-bottom:1px solid #ececec;padding:3px 6px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f6f6f6;font-weight:600} .num{text-align:right;white-space:nowrap} .grow{color:#1a7f37;font-weight:600}
.note{color:#666;font-size:12.5px} .note p{margin:.2em 0} .lede{font-size:17px;margin:.4em 0}
.nav a{margin-right:1em} .sections a{margin-right:1.1em} .sw,.dot{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.dot{border-radius:50%;width:9px;height:9px} details.card summary{cursor:pointer} details.card[open]{background:#fafafa}
.cardbody{padding:.4em .2em .6em 1.2em} .cardbody input{width:60%;padding:3px 6px;margin:.3em 0;font-size:13px}
.cardbody ol{margin:.3em 0;padding-left:1.6em;max-height:420px;overflow:auto} .cardbody li{margin:.15em 0}
.cardbody time{color:#555;font-variant-numeric:tabular-nums;margin-right:.6em} .cardbody .src{color:#7a4b00;margin-right:.6em}
ul.alerts{list-style:none;padding:0;margin:0} li.alert{padding:4px 0;border-bottom:1px solid #f0f0f0}
.badge{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;padding:1px 6px;border-radius:3px;background:#1f6feb;color:#fff;margin-right:.5em}
li.surging .badge{background:#d1242f} .showmore{margin:.3em 0;font-size:12px;cursor:pointer} .spark{display:block}
.figbox{position:relative} .nofig{background:#fff8e1;border:1px solid #f0d27a;padding:.8em 1em;border-radius:6px;color:#5c4400}
th.num{white-space:normal} col.c-story{width:50%} col.c-num{width:8%} col.c-time{width:12%} col.c-spark{width:10%}
svg.spark{max-width:100%} .plot{max-width:100%} td{overflow-wrap:anywhere}
@media (max-width:1000px){col.c-story{width:35%} col.c-num{width:10%} col.c-time{width:13%} col.c-spark{width:19%}
 td,th{padding:3px 4px}}
.has-plotly .nofig{display:none} .empty{background:#f6f8fa;border-radius:8px;padding:.6em 1.2em;margin-top:1em} footer{margin-top:2em}
"""
