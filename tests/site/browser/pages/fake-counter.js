// A stand-in for Roistat's counter (module.js) that learns the visit 2 s after load.
// ?via= chooses how it tells the page:
//   cookie     sets the roistat_visit cookie only, calls nobody
//   callback   calls window.roistatVisitCallback(visit), sets no cookie
//   processed  window.roistat exists from the start; getVisit() is empty until the visit
//              is processed, then registerOnVisitProcessedCallback callbacks run; no cookie
// ?autoplace=1 places the order right after telling the page, before any timer could run.
(function () {
  var q = new URLSearchParams(location.search);
  var via = q.get('via');
  var visit = q.get('visit') || '4521890';
  var processed = false;
  var callbacks = [];
  if (via === 'processed') {
    window.roistat = {
      getVisit: function () { return processed ? visit : null; },
      registerOnVisitProcessedCallback: function (fn) {
        if (processed) fn(); else callbacks.push(fn);
      }
    };
  }
  setTimeout(function () {
    processed = true;
    if (via === 'cookie') document.cookie = 'roistat_visit=' + visit + '; path=/';
    if (via === 'callback' && typeof window.roistatVisitCallback === 'function') {
      window.roistatVisitCallback(visit);
    }
    if (via === 'processed') callbacks.forEach(function (fn) { fn(); });
    if (q.get('autoplace')) window.placeOrder();
  }, 2000);
})();
