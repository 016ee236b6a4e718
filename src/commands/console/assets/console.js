// hookbridge console: keeps the figures on a page current by polling
// /console/api/overview, and asks for confirmation before an action. Served from the
// binary; the CSP allows no inline script, so this file is all the behaviour there is.
'use strict';
(function () {
  function get(o, path) {
    return path.split('|').reduce(function (v, k) { return v == null ? v : v[k]; }, o);
  }
  function show(v, kind) {
    if (v == null) return '–';
    if (kind === 'seconds') return '≤ ' + Math.round(v * 1000) + ' ms';
    return String(v);
  }
  function percent(s) {
    if (!s || !s.attempts) return '–';
    return (s.attempts_ok * 100 / s.attempts).toFixed(1) + ' %';
  }

  var live = document.querySelectorAll('[data-fig],[data-rate],[data-pct]');
  var last = null;
  var lastAt = 0;
  function poll() {
    fetch('/console/api/overview', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = '/console/login'; return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (o) {
        if (!o) return;
        var now = Date.now();
        document.querySelectorAll('[data-fig]').forEach(function (el) {
          el.textContent = show(get(o, el.dataset.fig), el.dataset.kind);
        });
        document.querySelectorAll('[data-pct]').forEach(function (el) {
          el.textContent = percent(get(o, el.dataset.pct));
        });
        if (last) {
          var secs = (now - lastAt) / 1000;
          document.querySelectorAll('[data-rate]').forEach(function (el) {
            var d = (get(o, el.dataset.rate) || 0) - (get(last, el.dataset.rate) || 0);
            el.textContent = (d / secs).toFixed(1) + '/s';
          });
        }
        last = o;
        lastAt = now;
      })
      .catch(function () { /* the next poll tries again */ });
  }
  if (live.length) {
    poll();
    window.setInterval(poll, 2000);
  }

  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (ev) {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
})();
