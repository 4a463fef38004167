/* matcher review page. Builds every element with createElement and textContent: no text of the
 * report (paths, list names, notes, errors) is ever parsed as markup. Data arrives as script files
 * (data/*.js) that call window.matcherReport: the page works from file:// without a server. */
(function () {
  'use strict';

  var PAGE_SIZES = [50, 100, 500];
  var SVG = 'http://www.w3.org/2000/svg';
  // Control, format and bidirectional characters are shown as visible codes, never obeyed.
  var INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb]/g;

  var S = null; // the summary
  var P = [], ST = [], F = [], M = [], T = [], X = []; // the rows' columns
  var lower = null; // lowercased paths, made when a path filter is first used
  var chunksLoaded = 0, nextChunk = 0;
  var details = {}, detailWaiting = {};
  var state = { filters: {}, sort: null, desc: false, page: 0, size: 100, view: null, selected: -1 };

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        if (key === 'text') node.textContent = attrs[key];
        else if (key === 'cls') node.className = attrs[key];
        else node.setAttribute(key, attrs[key]);
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }
  function visible(value) {
    if (value === null || value === undefined) return '';
    var text = typeof value === 'string' ? value : JSON.stringify(value);
    return text.replace(INVISIBLE, function (c) {
      return '\u27e8U+' + ('000' + c.charCodeAt(0).toString(16).toUpperCase()).slice(-4) + '\u27e9';
    });
  }
  function fmt(n) { return typeof n === 'number' ? n.toLocaleString('en') : visible(n); }
  function str(table, ref) { return ref === null || ref === undefined ? null : S.strings[table][ref]; }
  function loadScript(src, what) {
    var node = document.createElement('script');
    node.src = src;
    node.addEventListener('error', function () { problem('cannot load ' + what + ' (' + src + '): is the report folder complete?'); });
    document.head.appendChild(node);
  }
  function problem(text) {
    var box = $('problems');
    if (!box) { box = el('div', { id: 'problems', cls: 'warning', role: 'alert' }); $('main').insertBefore(box, $('main').firstChild); }
    box.appendChild(el('p', { text: text }));
  }

  // ------------------------------------------------------------------------------------------
  // Data entry points (called by data/*.js)
  var api = {
    summary: function (data) {
      S = data;
      document.title = visible(data.title);
      $('title').textContent = visible(data.title);
      $('loading').textContent = data.chunks.rows ? 'Loading the table…' : '';
      renderSummary();
      renderCharts();
      renderRun();
      buildFilters();
      $('main').hidden = false;
      if (data.chunks.rows) requestNextChunk(); else renderTable();
    },
    rows: function (n, data) {
      if (!S || n !== chunksLoaded) return;
      for (var i = 0; i < data.p.length; i++) {
        P.push(data.p[i]); ST.push(data.s[i]); F.push(data.f[i]); M.push(data.m[i]); T.push(data.t[i]); X.push(data.x[i]);
      }
      chunksLoaded++;
      lower = null;
      var done = chunksLoaded === S.chunks.rows;
      $('loading').textContent = done ? '' : 'Loading the table: ' + fmt(P.length) + ' of ' + fmt(S.report.records) + ' records…';
      if (chunksLoaded === 1 || done) applyView(true); // the page the examiner is on stays
      else renderTable();
      if (!done) window.setTimeout(requestNextChunk, 0);
    },
    details: function (n, records) {
      details[n] = records;
      var waiting = detailWaiting[n];
      delete detailWaiting[n];
      if (waiting !== undefined && state.selected === waiting) renderDetail(waiting);
    }
  };
  Object.freeze(api);
  Object.defineProperty(window, 'matcherReport', { value: api, writable: false, configurable: false });

  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' && !$('detail').hidden) { $('detail').hidden = true; state.selected = -1; }
  });

  function requestNextChunk() {
    if (nextChunk >= S.chunks.rows || nextChunk > chunksLoaded) return;
    loadScript('data/rows-' + nextChunk + '.js', 'part ' + (nextChunk + 1) + ' of the table');
    nextChunk++;
  }

  // ------------------------------------------------------------------------------------------
  // Summary, charts and the run
  function countTable(caption, pairs, total) {
    var body = el('tbody');
    var shown = pairs.slice(0, 50);
    shown.forEach(function (pair) { body.appendChild(el('tr', null, [el('th', { text: visible(pair[0]), scope: 'row' }), el('td', { text: fmt(pair[1]), cls: 'num' })])); });
    if (pairs.length > shown.length) body.appendChild(el('tr', null, [el('td', { colspan: '2', text: 'and ' + fmt(pairs.length - shown.length) + ' more' })]));
    if (!pairs.length) body.appendChild(el('tr', null, [el('td', { colspan: '2', text: 'none' })]));
    return el('table', { cls: 'counts' }, [el('caption', { text: caption + (total ? ' (' + total + ')' : '') }), body]);
  }
  function renderSummary() {
    var box = $('summary');
    var fs = S.files_by_status, rs = S.records_by_status;
    var cards = el('div', { cls: 'cards' });
    [['files', S.report.files, 'files'], ['records', S.report.records, 'records'], ['match', fs.match, 'files matched'],
      ['known_good', fs.known_good, 'known-good'], ['error', fs.error, 'errors'], ['skipped', fs.skipped, 'skipped'],
      ['no_match', fs.no_match, 'no match']].forEach(function (c) {
      cards.appendChild(el('div', { cls: 'card status-' + c[0], 'data-count': c[0] }, [el('span', { cls: 'value', text: fmt(c[1]) }), el('span', { cls: 'label', text: c[2] })]));
    });
    box.appendChild(el('h2', { text: 'Summary' }));
    box.appendChild(cards);
    if (S.manifest_problem) problem(S.manifest_problem);
    if (S.bad_line_count) {
      var list = el('ul');
      S.bad_lines.forEach(function (b) { list.appendChild(el('li', { text: 'line ' + b.line + ': ' + visible(b.error) })); });
      var warn = el('div', { cls: 'warning', id: 'bad-lines', role: 'alert' }, [
        el('p', { text: fmt(S.bad_line_count) + ' line(s) of the report are not scan records and are not in the table:' }), list]);
      box.appendChild(warn);
    }
    var statusPairs = S.statuses.map(function (s) { return [s, fs[s] + ' files, ' + rs[s] + ' records']; });
    var grid = el('div', { cls: 'grid' }, [
      countTable('By status', statusPairs),
      countTable('Matched files by list', S.files_by_list),
      countTable('Matched files by category', S.files_by_category),
      countTable('Matched files by series', S.files_by_series)
    ]);
    box.appendChild(grid);
    var m = S.manifest || {};
    var facts = el('dl', { cls: 'facts' });
    function fact(name, value) { facts.appendChild(el('dt', { text: name })); facts.appendChild(el('dd', { text: visible(value === undefined || value === null ? '(not recorded)' : value) })); }
    fact('Scan tool', m.versions ? 'matcher ' + m.versions.matcher : undefined);
    fact('Started', m.started_at); fact('Finished', m.finished_at); fact('Host', m.host);
    fact('Evidence', m.evidence_paths ? m.evidence_paths.join(', ') : undefined);
    fact('Index checksum (SHA-256 of its manifest)', m.index ? m.index.manifest_sha256 : undefined);
    fact('Report', S.report.path); fact('Page made', S.generated_at + ' by ' + S.generator);
    box.appendChild(facts);
  }

  function barChart(title, pairs, limit) {
    var shown = pairs.slice(0, limit || 12);
    var max = Math.max.apply(null, shown.map(function (p) { return p[1]; }).concat([1]));
    var rowH = 20, labelW = 170, barW = 220, h = rowH * Math.max(shown.length, 1) + 4;
    var chart = svg('svg', { width: labelW + barW + 70, height: h, role: 'img', 'aria-label': title });
    shown.forEach(function (p, i) {
      var y = i * rowH + 2, w = Math.max(1, Math.round(barW * p[1] / max));
      var label = svg('text', { x: labelW - 6, y: y + 14, 'text-anchor': 'end', 'class': 'label' });
      var name = visible(p[0]);
      label.textContent = name.length > 26 ? name.slice(0, 25) + '…' : name;
      var tip = svg('title', {}); tip.textContent = name + ': ' + p[1]; label.appendChild(tip);
      chart.appendChild(label);
      chart.appendChild(svg('rect', { x: labelW, y: y + 3, width: w, height: rowH - 6, 'class': 'bar' }));
      var value = svg('text', { x: labelW + w + 4, y: y + 14, 'class': 'value' }); value.textContent = fmt(p[1]);
      chart.appendChild(value);
    });
    if (!shown.length) { var none = svg('text', { x: 4, y: 14 }); none.textContent = 'none'; chart.appendChild(none); }
    var fig = el('figure', { cls: 'chart' }, [el('figcaption', { text: title + (pairs.length > shown.length ? ' (top ' + shown.length + ' of ' + pairs.length + ')' : '') })]);
    fig.appendChild(chart);
    return fig;
  }
  function histogram(title, points) {
    var maxD = points.length ? points[points.length - 1][0] : 0;
    var maxC = Math.max.apply(null, points.map(function (p) { return p[1]; }).concat([1]));
    var W = 360, H = 120, bw = Math.max(2, Math.floor((W - 20) / (maxD + 1)));
    var chart = svg('svg', { width: W + 40, height: H + 30, role: 'img', 'aria-label': title });
    points.forEach(function (p) {
      var h = Math.max(1, Math.round((H - 10) * p[1] / maxC));
      var bar = svg('rect', { x: 30 + p[0] * bw, y: H - h, width: Math.max(1, bw - 1), height: h, 'class': 'bar' });
      var tip = svg('title', {}); tip.textContent = 'distance ' + p[0] + ': ' + p[1]; bar.appendChild(tip);
      chart.appendChild(bar);
    });
    chart.appendChild(svg('line', { x1: 30, y1: H, x2: 30 + (maxD + 1) * bw, y2: H, 'class': 'axis' }));
    [0, maxD].forEach(function (d) { var t = svg('text', { x: 30 + d * bw, y: H + 14, 'class': 'value' }); t.textContent = String(d); chart.appendChild(t); });
    var top = svg('text', { x: 0, y: 12, 'class': 'value' }); top.textContent = fmt(maxC); chart.appendChild(top);
    var fig = el('figure', { cls: 'chart' }, [el('figcaption', { text: title })]);
    fig.appendChild(chart);
    return fig;
  }
  function renderCharts() {
    var box = $('charts');
    box.appendChild(el('h2', { text: 'Charts' }));
    var grid = el('div', { cls: 'grid' });
    grid.appendChild(barChart('Matched files by category', S.files_by_category));
    grid.appendChild(barChart('Matched files by list', S.files_by_list));
    grid.appendChild(barChart('Matches by variant (how the evidence is turned)', S.matches_by_variant));
    grid.appendChild(barChart('Matches by view of the known image', S.matches_by_view));
    Object.keys(S.distances).forEach(function (alg) { grid.appendChild(histogram('Distances of ' + visible(alg) + ' matches', S.distances[alg])); });
    box.appendChild(grid);
  }
  function valueNode(value) {
    if (value !== null && typeof value === 'object') {
      if (Array.isArray(value) && value.every(function (v) { return v === null || typeof v !== 'object'; })) {
        return document.createTextNode(value.map(visible).join(', ') || '(none)');
      }
      var body = el('tbody');
      Object.keys(value).forEach(function (key) { body.appendChild(el('tr', null, [el('th', { text: visible(key), scope: 'row' }), el('td', null, [valueNode(value[key])])])); });
      return el('table', { cls: 'kv' }, [body]);
    }
    return document.createTextNode(value === null || value === undefined ? '—' : visible(value));
  }
  function renderRun() {
    var box = $('run');
    box.appendChild(el('h2', { text: 'The run (its manifest: versions, every parameter and threshold, index, counts)' }));
    box.appendChild(S.manifest ? valueNode(S.manifest) : el('p', { text: S.manifest_problem || 'no run manifest' }));
  }

  // ------------------------------------------------------------------------------------------
  // Filters, sorting, the table
  var FILTERS = [
    ['status', 'Status'], ['list', 'List'], ['category', 'Category'], ['series', 'Series'],
    ['algorithm', 'Algorithm'], ['variant', 'Variant'], ['view', 'Known view']
  ];
  function optionsFor(key) {
    if (key === 'status') return S.statuses.map(function (s, i) { return [String(i), s]; });
    if (key === 'category') return S.files_by_category.map(function (p) { return [p[0], p[0]]; });
    var values = S.strings[key].map(function (s, i) { return [String(i), s]; });
    if (key === 'view') values.unshift(['none', '(the known image itself)']);
    return values;
  }
  function buildFilters() {
    var form = $('filters');
    FILTERS.forEach(function (f) {
      var select = el('select', { id: 'filter-' + f[0], name: f[0] }, [el('option', { value: '', text: 'any' })]);
      optionsFor(f[0]).forEach(function (o) { select.appendChild(el('option', { value: o[0], text: visible(o[1]) })); });
      select.addEventListener('change', function () { setFilter(f[0], select.value); });
      form.appendChild(el('label', null, [f[1] + ' ', select]));
    });
    var dist = el('input', { id: 'filter-distance', type: 'number', min: '0', step: '1', inputmode: 'numeric', placeholder: 'any' });
    dist.addEventListener('input', function () { setFilter('distance', dist.value); });
    form.appendChild(el('label', null, ['Distance ≤ ', dist]));
    var text = el('input', { id: 'filter-path', type: 'search', placeholder: 'part of the path', size: '24' });
    var timer = null;
    text.addEventListener('input', function () { window.clearTimeout(timer); timer = window.setTimeout(function () { setFilter('path', text.value); }, 200); });
    form.appendChild(el('label', null, ['Path ', text]));
    var size = el('select', { id: 'page-size' });
    PAGE_SIZES.forEach(function (n) { var o = el('option', { value: String(n), text: String(n) }); if (n === state.size) o.selected = true; size.appendChild(o); });
    size.addEventListener('change', function () { state.size = Number(size.value); state.page = 0; renderTable(); });
    form.appendChild(el('label', null, ['Rows per page ', size]));
    var reset = el('button', { type: 'reset', text: 'Clear filters' });
    form.addEventListener('reset', function () { state.filters = {}; window.setTimeout(function () { applyView(false); }, 0); });
    form.appendChild(reset);
    form.addEventListener('submit', function (event) { event.preventDefault(); });
  }
  function setFilter(key, value) {
    if (value === '' || value === null) delete state.filters[key]; else state.filters[key] = value;
    state.page = 0;
    applyView(false);
  }
  function matchPasses(f, m) {
    if (f.algorithm !== undefined && m[0] !== Number(f.algorithm)) return false;
    if (f.distance !== undefined && !(m[1] <= Number(f.distance))) return false;
    if (f.variant !== undefined && m[2] !== Number(f.variant)) return false;
    if (f.view !== undefined && (f.view === 'none' ? m[3] !== null : m[3] !== Number(f.view))) return false;
    if (f.list !== undefined && m[4] !== Number(f.list)) return false;
    if (f.category !== undefined && (m[5] === null || String(m[5]) !== f.category)) return false;
    if (f.series !== undefined && m[6] !== Number(f.series)) return false;
    return true;
  }
  var SORT_KEYS = {
    number: function (i) { return i; },
    path: function (i) { return P[i]; },
    frame: function (i) { return F[i] === null ? -1 : F[i]; },
    status: function (i) { return ST[i]; },
    algorithm: function (i) { return M[i] ? str('algorithm', M[i][0][0]) : '\uffff'; },
    distance: function (i) { return M[i] ? M[i][0][1] : Infinity; },
    variant: function (i) { return M[i] ? str('variant', M[i][0][2]) || '' : '\uffff'; },
    list: function (i) { return M[i] ? str('list', M[i][0][4]) || '' : '\uffff'; },
    category: function (i) { return M[i] && M[i][0][5] !== null ? M[i][0][5] : Infinity; },
    series: function (i) { return M[i] ? str('series', M[i][0][6]) || '' : '\uffff'; },
    matches: function (i) { return M[i] ? M[i].length : 0; }
  };
  function applyView(keepPage) {
    var f = state.filters, n = P.length;
    var matchKeys = ['algorithm', 'distance', 'variant', 'view', 'list', 'category', 'series'].filter(function (k) { return f[k] !== undefined; });
    var needle = f.path !== undefined ? f.path.toLowerCase() : null;
    if (needle !== null && (lower === null || lower.length !== n)) lower = P.map(function (p) { return p.toLowerCase(); });
    var status = f.status !== undefined ? Number(f.status) : -1;
    var out;
    if (status < 0 && !matchKeys.length && needle === null) {
      out = null;
    } else {
      var picked = new Int32Array(n), count = 0;
      for (var i = 0; i < n; i++) {
        if (status >= 0 && ST[i] !== status) continue;
        if (needle !== null && lower[i].indexOf(needle) < 0) continue;
        if (matchKeys.length) {
          var ms = M[i], ok = false;
          if (ms) for (var j = 0; j < ms.length && !ok; j++) ok = matchPasses(f, ms[j]);
          if (!ok) continue;
        }
        picked[count++] = i;
      }
      out = picked.subarray(0, count);
    }
    if (state.sort && state.sort !== 'number') {
      if (out === null) { out = new Int32Array(n); for (var k = 0; k < n; k++) out[k] = k; }
      var key = SORT_KEYS[state.sort], keys = new Array(n);
      for (var q = 0; q < out.length; q++) keys[out[q]] = key(out[q]);
      var sign = state.desc ? -1 : 1;
      out = Int32Array.from(out).sort(function (a, b) {
        var x = keys[a], y = keys[b];
        return x < y ? -sign : x > y ? sign : a - b;
      });
    } else if (state.desc) {
      if (out === null) { out = new Int32Array(n); for (var r = 0; r < n; r++) out[r] = n - 1 - r; } else out = Int32Array.from(out).reverse();
    }
    state.view = out;
    if (!keepPage) state.page = 0;
    renderTable();
  }
  function viewLength() { return state.view === null ? P.length : state.view.length; }
  function rowAt(k) { return state.view === null ? k : state.view[k]; }

  var COLUMNS = [
    ['number', '#'], ['thumb', 'Image'], ['path', 'Path'], ['frame', 'Frame'], ['status', 'Status'],
    ['algorithm', 'Algorithm'], ['distance', 'Distance'], ['variant', 'Variant / view'], ['explanation', 'Difference'],
    ['list', 'List'], ['category', 'Category'], ['series', 'Series'], ['matches', 'Matches']
  ];
  function columns() { return COLUMNS.filter(function (c) { return c[0] !== 'thumb' || S.thumbnails.mode; }); }
  function renderHead() {
    var head = $('table').tHead;
    head.textContent = '';
    var tr = el('tr');
    columns().forEach(function (c) {
      var th = el('th', { scope: 'col', 'data-col': c[0] });
      if (SORT_KEYS[c[0]]) {
        var button = el('button', { type: 'button', cls: 'sort', text: c[1] });
        var sorted = state.sort === c[0] || (c[0] === 'number' && !state.sort);
        if (sorted) { th.setAttribute('aria-sort', state.desc ? 'descending' : 'ascending'); button.textContent = c[1] + (state.desc ? ' ▼' : ' ▲'); }
        button.addEventListener('click', function () {
          var current = state.sort || 'number';
          if (current === c[0]) state.desc = !state.desc; else { state.sort = c[0]; state.desc = false; }
          applyView(false);
        });
        th.appendChild(button);
      } else th.textContent = c[1];
      tr.appendChild(th);
    });
    head.appendChild(tr);
  }
  function thumbNode(i, big) {
    var t = T[i];
    if (t !== 1) return el('span', { cls: 'nothumb', text: t ? '—' : '', title: t ? visible(t) : '' });
    var img = el('img', { src: 'thumbs/' + i + '-b.jpg', alt: 'thumbnail (hidden: greyscale, blurred)', cls: 'thumb hidden' + (big ? ' big' : ''), loading: 'lazy', 'data-record': String(i) });
    var button = el('button', { type: 'button', cls: 'reveal', 'aria-pressed': 'false', text: 'Reveal' });
    button.addEventListener('click', function (event) {
      event.stopPropagation();
      var shown = button.getAttribute('aria-pressed') === 'true';
      img.src = 'thumbs/' + i + (shown ? '-b.jpg' : '.jpg');
      img.className = 'thumb' + (shown ? ' hidden' : ' revealed') + (big ? ' big' : '');
      img.alt = shown ? 'thumbnail (hidden: greyscale, blurred)' : 'thumbnail';
      button.setAttribute('aria-pressed', shown ? 'false' : 'true');
      button.textContent = shown ? 'Reveal' : 'Hide';
    });
    return el('span', { cls: 'thumbbox' }, [img, button]);
  }
  function cell(key, i) {
    var m = M[i] ? M[i][0] : null;
    switch (key) {
      case 'number': return el('td', { cls: 'num', text: String(i + 1) });
      case 'thumb': return el('td', null, [thumbNode(i, false)]);
      case 'path':
        var shown = visible(P[i]) || '(no path)';
        return el('td', { cls: 'path', title: shown, dir: 'ltr' }, [el('button', { type: 'button', cls: 'open', text: shown })].concat(X[i] ? [el('span', { cls: 'tag', text: 'raw bytes', title: 'the name is not valid UTF-8: see the details' })] : []));
      case 'frame': return el('td', { cls: 'num', text: F[i] === null ? '' : String(F[i]) });
      case 'status': return el('td', { cls: 'status status-' + S.statuses[ST[i]], text: S.statuses[ST[i]] });
      case 'algorithm': return el('td', { text: m ? visible(str('algorithm', m[0])) : '' });
      case 'distance': return el('td', { cls: 'num', text: m ? String(m[1]) : '' });
      case 'variant': return el('td', { text: m ? visible([str('variant', m[2]), str('view', m[3])].filter(Boolean).join(' / ')) : '' });
      case 'explanation': return el('td', { text: m ? visible(str('explanation', m[7])) : '' });
      case 'list': return el('td', { text: m ? visible(str('list', m[4])) : '' });
      case 'category': return el('td', { cls: 'num', text: m && m[5] !== null ? visible(String(m[5])) : '' });
      case 'series': return el('td', { text: m ? visible(str('series', m[6])) : '' });
      case 'matches': return el('td', { cls: 'num', text: M[i] ? String(M[i].length) : '0' });
    }
    return el('td');
  }
  function renderTable() {
    renderHead();
    var body = $('table').tBodies[0];
    var total = viewLength(), pages = Math.max(1, Math.ceil(total / state.size));
    if (state.page >= pages) state.page = pages - 1;
    var start = state.page * state.size, end = Math.min(total, start + state.size);
    var rows = document.createDocumentFragment(), cols = columns();
    for (var k = start; k < end; k++) {
      var i = rowAt(k);
      var tr = el('tr', { 'data-record': String(i), tabindex: '-1' });
      if (i === state.selected) tr.className = 'selected';
      for (var c = 0; c < cols.length; c++) tr.appendChild(cell(cols[c][0], i));
      tr.addEventListener('click', openRow);
      rows.appendChild(tr);
    }
    body.textContent = '';
    body.appendChild(rows);
    var all = S.report.records, loaded = P.length;
    $('shown').textContent = fmt(total) + ' of ' + fmt(loaded) + ' records' + (Object.keys(state.filters).length ? ' match the filters' : '') +
      (loaded < all ? ' (' + fmt(all - loaded) + ' still loading)' : '');
    renderPager();
  }
  function openRow(event) {
    var i = Number(event.currentTarget.getAttribute('data-record'));
    showDetail(i);
  }
  function renderPager() {
    var nav = $('pager');
    nav.textContent = '';
    var total = viewLength(), pages = Math.max(1, Math.ceil(total / state.size));
    function go(label, page, id) {
      var b = el('button', { type: 'button', text: label, id: id });
      b.disabled = page < 0 || page >= pages || page === state.page;
      b.addEventListener('click', function () { state.page = page; renderTable(); });
      nav.appendChild(b);
    }
    go('« First', 0, 'page-first'); go('‹ Previous', state.page - 1, 'page-prev');
    nav.appendChild(el('span', { id: 'page-of', text: ' page ' + fmt(state.page + 1) + ' of ' + fmt(pages) + ' ' }));
    go('Next ›', state.page + 1, 'page-next'); go('Last »', pages - 1, 'page-last');
  }

  // ------------------------------------------------------------------------------------------
  // Details of one record
  function showDetail(i) {
    state.selected = i;
    var chunk = Math.floor(i / S.chunks.details_per_chunk);
    var box = $('detail');
    box.hidden = false;
    Array.prototype.forEach.call(document.querySelectorAll('#table tr.selected'), function (tr) { tr.className = ''; });
    var tr = document.querySelector('#table tr[data-record="' + i + '"]');
    if (tr) tr.className = 'selected';
    if (details[chunk]) { renderDetail(i); return; }
    box.textContent = '';
    box.appendChild(el('p', { text: 'Loading record ' + (i + 1) + '…' }));
    if (!(chunk in detailWaiting)) loadScript('data/details-' + chunk + '.js', 'the details of record ' + (i + 1));
    detailWaiting[chunk] = i;
  }
  function renderDetail(i) {
    var record = details[Math.floor(i / S.chunks.details_per_chunk)][i % S.chunks.details_per_chunk];
    var box = $('detail');
    box.textContent = '';
    var close = el('button', { type: 'button', id: 'detail-close', text: 'Close ✕' });
    close.addEventListener('click', function () { box.hidden = true; state.selected = -1; });
    box.appendChild(el('div', { cls: 'detail-head' }, [el('h2', { text: 'Record ' + (i + 1) }), close]));
    box.appendChild(el('p', { cls: 'detail-path', dir: 'ltr' }, [el('code', { id: 'detail-path', text: visible(record.path) || '(no path)' })]));
    if (record.path_raw_hex) box.appendChild(el('p', { cls: 'raw', text: 'The name is not valid UTF-8; its raw bytes (hex): ' + visible(record.path_raw_hex) }));
    box.appendChild(el('p', { cls: 'hint', text: 'Control, format and direction characters in names are shown as ⟨U+XXXX⟩.' }));
    if (T[i] === 1) box.appendChild(thumbNode(i, true));
    else if (T[i]) box.appendChild(el('p', { cls: 'nothumb', text: visible(T[i]) }));
    if (record.error) box.appendChild(el('p', { cls: 'error', role: 'note', text: 'Error: ' + visible(record.error) }));
    if (record.notes && record.notes.length) {
      var notes = el('ul', { cls: 'notes' });
      record.notes.forEach(function (n) { notes.appendChild(el('li', { text: visible(n) })); });
      box.appendChild(el('div', null, [el('h3', { text: 'Notes' }), notes]));
    }
    var matches = record.matches || [];
    box.appendChild(el('h3', { text: matches.length + ' match' + (matches.length === 1 ? '' : 'es') }));
    if (matches.length) {
      var keys = ['algorithm', 'distance', 'variant', 'view', 'explanation', 'record', 'list', 'category', 'series', 'region'];
      matches.forEach(function (m) { Object.keys(m).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
      keys = keys.filter(function (k) { return k !== 'region' || matches.some(function (m) { return m.region !== undefined && m.region !== null; }); });
      var head = el('tr', null, keys.map(function (k) { return el('th', { scope: 'col', text: visible(k) }); }));
      var body = el('tbody');
      matches.forEach(function (m) { body.appendChild(el('tr', null, keys.map(function (k) { return el('td', { text: visible(m[k]) }); }))); });
      box.appendChild(el('div', { cls: 'table-wrap' }, [el('table', { id: 'detail-matches' }, [el('thead', null, [head]), body])]));
    }
    var rest = {};
    Object.keys(record).forEach(function (k) { if (['matches', 'notes', 'error', 'path', 'path_raw_hex'].indexOf(k) < 0) rest[k] = record[k]; });
    box.appendChild(el('h3', { text: 'File, digests and hashes' }));
    box.appendChild(valueNode(rest));
    close.focus();
  }
}());
