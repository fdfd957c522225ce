/* Reservo booking pages: progressive enhancements only; every page works without them. */
(function () {
  "use strict";

  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  /* Forms submit once: a double click sends one request (the server also guards). */
  function submitOnce() {
    each("form[data-submit-once]", function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.submitted === "1") {
          event.preventDefault();
          return;
        }
        form.dataset.submitted = "1";
        each("button[type=submit]", function (button) {
          button.setAttribute("aria-disabled", "true");
        }, form);
      });
    });
    // Coming back with the Back button: the page is live again.
    window.addEventListener("pageshow", function () {
      each("form[data-submit-once]", function (form) {
        delete form.dataset.submitted;
        each("button[type=submit]", function (button) {
          button.removeAttribute("aria-disabled");
        }, form);
      });
    });
  }

  /* Hold countdown, from the server's remaining seconds (no trust in the device clock). */
  function countdown() {
    var box = document.querySelector("[data-countdown]");
    if (!box) return;
    var total = parseInt(box.dataset.secondsLeft, 10);
    if (isNaN(total)) return;
    var started = performance.now();
    var clock = box.querySelector("[data-countdown-clock]");
    var visible = box.querySelector("[data-countdown-visible]");
    var announce = box.querySelector("[data-countdown-announce]");
    var announced = false;
    if (visible) visible.hidden = false;

    function tick() {
      var left = Math.max(0, Math.ceil(total - (performance.now() - started) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      clock.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
      if (left <= 60 && left > 0 && !announced && announce) {
        announced = true;
        announce.textContent = announce.dataset.minuteText;
      }
      if (left <= 0) {
        var active = box.querySelector("[data-hold-active]");
        if (active) active.hidden = true;
        box.querySelector("[data-hold-expired]").hidden = false;
        each("[data-confirm-button]", function (button) {
          button.disabled = true;
        });
        return;
      }
      window.setTimeout(tick, 250);
    }
    tick();
  }

  /* Seat choice summary ("Your choice: A1, A2"). */
  function selectedLabels(form) {
    var labels = [];
    each(".seat-input:checked", function (input) {
      var label = form.querySelector('label[for="' + input.id + '"]');
      if (label) labels.push(label.dataset.seatLabel);
    }, form);
    return labels;
  }

  function seatSummary() {
    var summary = document.querySelector("[data-selection-summary]");
    if (!summary) return;
    var form = summary.closest("form");
    function update() {
      var labels = selectedLabels(form);
      summary.textContent = labels.length
        ? summary.dataset.someText.replace("__SEATS__", labels.join(", "))
        : summary.dataset.noneText;
    }
    form.addEventListener("change", update);
    update();
  }

  /* Live availability: poll the cached JSON endpoint and update in place. */
  function setAvailability(element, available) {
    if (!element) return;
    var text = available > 0
      ? element.dataset.leftTemplate.replace("__N__", String(available))
      : element.dataset.soldOutText;
    if (element.textContent !== text) element.textContent = text;
    element.classList.toggle("availability--sold-out", available <= 0);
    element.classList.toggle("availability--low", available > 0 && available <= 3);
  }

  var SEAT_STATES = ["available", "held", "booked"];

  function setSeat(seat, taken) {
    var input = document.getElementById("seat-" + seat.id);
    if (!input) return;
    var label = input.nextElementSibling;
    // This browser's own held seats stay shown as its own.
    if (!label || label.classList.contains("seat--yours")) return;
    var current = null;
    SEAT_STATES.forEach(function (state) {
      if (label.classList.contains("seat--" + state)) current = state;
    });
    if (current === seat.status) return;
    SEAT_STATES.forEach(function (state) {
      label.classList.toggle("seat--" + state, state === seat.status);
    });
    var stateText = label.querySelector("[data-seat-state]");
    var available = seat.status === "available";
    if (available) {
      input.disabled = false;
      label.classList.remove("seat--just-taken");
    } else {
      if (input.checked) {
        input.checked = false;
        label.classList.add("seat--just-taken");
        taken.push(label.dataset.seatLabel);
      }
      input.disabled = true;
    }
    if (stateText) {
      var legend = document.querySelector(".legend");
      var key = "state" + seat.status.charAt(0).toUpperCase() + seat.status.slice(1);
      stateText.textContent = ", " + ((legend && legend.dataset[key]) || seat.status);
    }
  }

  function poll(container, apply) {
    var url = container.dataset.liveUrl;
    var every = parseInt(container.dataset.pollMs, 10) || 2000;
    function run() {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) apply(data); })
        .catch(function () { /* offline for a moment: the next poll tries again */ })
        .then(function () { window.setTimeout(run, every); });
    }
    window.setTimeout(run, every);
  }

  function liveResource() {
    var article = document.querySelector(".resource[data-live-url]");
    if (!article) return;
    poll(article, function (data) {
      setAvailability(article.querySelector("[data-availability]"), data.available);
      var taken = [];
      (data.seats || []).forEach(function (seat) { setSeat(seat, taken); });
      if (taken.length) {
        var summary = document.querySelector("[data-selection-summary]");
        if (summary) summary.textContent = summary.dataset.takenText.replace("__SEATS__", taken.join(", "));
      }
      document.body.dataset.liveUpdatedAt = String(Date.now());
    });
  }

  function liveHome() {
    var list = document.querySelector(".cards[data-live-url]");
    if (!list) return;
    poll(list, function (data) {
      (data.results || []).forEach(function (item) {
        var card = list.querySelector('[data-resource-id="' + item.id + '"]');
        if (card) setAvailability(card.querySelector("[data-availability]"), item.available);
      });
      document.body.dataset.liveUpdatedAt = String(Date.now());
    });
  }

  function focusConflict() {
    var conflict = document.querySelector("[data-conflict]");
    if (conflict) conflict.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    submitOnce();
    countdown();
    seatSummary();
    liveResource();
    liveHome();
    focusConflict();
  });
})();
