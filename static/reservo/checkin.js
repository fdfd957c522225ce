/* The staff's check-in page: reads QR codes with the camera where the browser can
   (BarcodeDetector) and submits them; typing a reference works everywhere without it. */
(function () {
  "use strict";

  var form = document.querySelector("[data-check-in-form]");
  var scanner = form && form.querySelector("[data-scanner]");
  if (!scanner || !("BarcodeDetector" in window)) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;

  // Scanning goes on after each submitted scan (the page reloads with the outcome).
  var SCANNING_KEY = "reservo-check-in-scanning";
  // The same code seen again this soon is the one still in front of the camera.
  var LAST_KEY = "reservo-check-in-last";
  var REPEAT_MS = 5000;
  var FRAME_MS = 150;

  function stored(key) {
    try { return window.sessionStorage.getItem(key); } catch (error) { return null; }
  }
  function store(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, value);
    } catch (error) { /* private browsing: scanning still works, without memory */ }
  }

  function justSent(value) {
    try {
      var last = JSON.parse(stored(LAST_KEY) || "null");
      return !!last && last.value === value && Date.now() - last.at < REPEAT_MS;
    } catch (error) {
      return false;
    }
  }

  function setUp(detector) {
    var video = scanner.querySelector("[data-scanner-video]");
    var start = scanner.querySelector("[data-scanner-start]");
    var stop = scanner.querySelector("[data-scanner-stop]");
    var status = scanner.querySelector("[data-scanner-status]");
    var input = form.querySelector("[name=code]");
    var stream = null;
    var timer = null;

    function halt() {
      window.clearTimeout(timer);
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
      video.srcObject = null;
      video.hidden = true;
      start.hidden = false;
      stop.hidden = true;
    }

    function next(delay) {
      timer = window.setTimeout(look, delay);
    }

    function look() {
      if (!stream) return;
      if (video.readyState < 2) { next(FRAME_MS); return; }
      detector.detect(video).then(function (codes) {
        var value = codes.length ? codes[0].rawValue : "";
        if (!value || justSent(value)) { next(FRAME_MS); return; }
        store(LAST_KEY, JSON.stringify({ value: value, at: Date.now() }));
        input.value = value;
        halt();
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      }, function () { next(4 * FRAME_MS); });
    }

    function begin() {
      status.textContent = "";
      navigator.mediaDevices
        .getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (camera) {
          stream = camera;
          video.srcObject = camera;
          video.hidden = false;
          start.hidden = true;
          stop.hidden = false;
          store(SCANNING_KEY, "1");
          return video.play();
        })
        .then(function () { look(); })
        .catch(function () {
          halt();
          store(SCANNING_KEY, null);
          status.textContent = scanner.dataset.cameraFailed || "";
        });
    }

    start.addEventListener("click", begin);
    stop.addEventListener("click", function () {
      store(SCANNING_KEY, null);
      halt();
      input.focus();
    });
    // The camera is off while the page is hidden, and back when it shows again.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) halt();
      else if (stored(SCANNING_KEY) && !stream) begin();
    });
    scanner.hidden = false;
    if (stored(SCANNING_KEY)) begin();
  }

  var formats = window.BarcodeDetector.getSupportedFormats
    ? window.BarcodeDetector.getSupportedFormats()
    : Promise.resolve(["qr_code"]);
  formats.then(function (supported) {
    if (supported.indexOf("qr_code") === -1) return;
    setUp(new window.BarcodeDetector({ formats: ["qr_code"] }));
  }, function () { /* no scanning: the typed reference remains */ });
})();
