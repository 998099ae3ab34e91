/*
 * roistat-visit.js: puts the Roistat visit id into the checkout form, so that the Bitrix
 * orderbridge module saves it with the order (property ROISTAT_VISIT).
 * Fills every input[name="roistat_visit"] (and the names in window.orderbridgeVisitFields,
 * e.g. ["ORDER_PROP_21"]) with the visit: from roistat.getVisit(), else from the counter's
 * callbacks, else from the roistat_visit cookie. Only 1-32 digits count as a visit.
 * It fills again whenever inputs appear (forms rendered late or re-rendered by AJAX), when
 * the counter reports the visit late, and just before a form is submitted.
 * ES5, no dependencies; without a counter or a cookie it changes nothing and throws nothing.
 */
(function (w, d) {
	'use strict';
	if (w.orderbridgeRoistatVisit) {
		return; // included twice: the first copy already does the work
	}
	var VALID = /^[0-9]{1,32}$/;
	var fromCallback = null;
	var registered = false;

	function valid(v) {
		v = v === null || v === undefined ? '' : String(v);
		return VALID.test(v) ? v : null;
	}

	function cookie() {
		var m = /(?:^|;\s*)roistat_visit=([^;]*)/.exec(d.cookie || '');
		return m ? m[1] : null;
	}

	function visit() {
		var r = w.roistat, v = null;
		try {
			v = r && typeof r.getVisit === 'function' ? valid(r.getVisit()) : null;
		} catch (e) { /* a broken counter must not break the checkout */ }
		return v || fromCallback || valid(cookie());
	}

	function selector() {
		var names = ['roistat_visit'].concat(w.orderbridgeVisitFields || []), parts = [], i;
		for (i = 0; i < names.length; i++) {
			if (/^[\w\[\]-]+$/.test(names[i])) { // a name that cannot break the selector
				parts.push('input[name="' + names[i] + '"]');
			}
		}
		return parts.join(',');
	}

	function fill() {
		try {
			var v = visit(), inputs, i;
			if (!v || !d.querySelectorAll) {
				return v;
			}
			inputs = d.querySelectorAll(selector());
			for (i = 0; i < inputs.length; i++) {
				if (inputs[i].value !== v) {
					inputs[i].value = v;
				}
			}
			return v;
		} catch (e) {
			return null;
		}
	}

	// The counter calls this once it knows the visit; keep a callback the site set before us.
	var previous = w.roistatVisitCallback;
	w.roistatVisitCallback = function (v) {
		fromCallback = valid(v) || fromCallback;
		fill();
		if (typeof previous === 'function') {
			return previous.apply(this, arguments);
		}
	};

	// The counter loads asynchronously: register with it as soon as it is there.
	function register() {
		var r = w.roistat;
		if (!registered && r && typeof r.registerOnVisitProcessedCallback === 'function') {
			registered = true;
			try {
				r.registerOnVisitProcessedCallback(fill);
			} catch (e) { /* see above */ }
		}
	}

	// Until a visit is known, look again twice a second for a minute: a counter that sets
	// the cookie late without calling back is still caught before the buyer is done.
	var tries = 0, timer = setInterval(function () {
		register();
		if (fill() || ++tries >= 120) {
			clearInterval(timer);
		}
	}, 500);

	if (w.MutationObserver && d.documentElement) {
		new w.MutationObserver(fill).observe(d.documentElement, {childList: true, subtree: true});
	}
	if (d.addEventListener) {
		// Capture phase: runs before the form's own submit handlers read the fields.
		d.addEventListener('submit', fill, true);
		d.addEventListener('DOMContentLoaded', fill);
	}
	register();
	fill();
	w.orderbridgeRoistatVisit = {fill: fill, visit: visit};
})(window, document);
