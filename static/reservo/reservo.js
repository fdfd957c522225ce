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
        each("[data-expired-heading]", function (heading) {
          heading.textContent = heading.dataset.expiredHeading;
        });
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
    // While this browser holds seats the map only shows them (a booking moved by staff
    // keeps its own seats pickable: its map is a choice like any other).
    var yours = Array.prototype.map.call(form.querySelectorAll(".seat-input:disabled + label.seat--yours"), function (label) {
      return label.dataset.seatLabel;
    });
    if (yours.length) {
      summary.textContent = summary.dataset.yoursText.replace("__SEATS__", yours.join(", "));
      return;
    }
    function update() {
      var labels = selectedLabels(form);
      summary.textContent = labels.length
        ? summary.dataset.someText.replace("__SEATS__", labels.join(", "))
        : summary.dataset.noneText;
    }
    form.addEventListener("change", update);
    update();
  }

  /* Seat map: one tab stop (roving tabindex). Arrow keys move between the seats that can
     be picked, Home and End to a row's first and last (with Ctrl, the map's), Space picks
     (the checkbox's own). A hint shows when the map is wider than its box. */
  var seatMapControl = null;

  function seatMap() {
    var map = document.querySelector("[data-seat-map]");
    if (!map) return null;
    var help = document.querySelector("[data-keyboard-help]");
    if (help && help.dataset.arrowsText) help.textContent = help.dataset.arrowsText;

    function pickable(root) {
      return Array.prototype.filter.call(root.querySelectorAll(".seat-input"), function (input) {
        return !input.matches(":disabled");
      });
    }
    function middle(input) {
      var box = input.nextElementSibling.getBoundingClientRect();
      return box.left + box.width / 2;
    }
    function nearest(inputs, x) {
      var best = null;
      var bestDistance = Infinity;
      inputs.forEach(function (input) {
        var distance = Math.abs(middle(input) - x);
        if (distance < bestDistance) {
          best = input;
          bestDistance = distance;
        }
      });
      return best;
    }
    // The pickable seat nearest to x in the first row from `row` on (step 1 goes down, -1
    // up) that has one.
    function nearestFrom(row, step, x) {
      var rows = Array.prototype.slice.call(map.querySelectorAll(".seat-row"));
      for (var i = rows.indexOf(row); i >= 0 && i < rows.length; i += step) {
        var found = nearest(pickable(rows[i]), x);
        if (found) return found;
      }
      return null;
    }
    function tabStop() {
      return map.querySelector('.seat-input[tabindex="0"]');
    }
    function makeTabStop(input) {
      each('.seat-input[tabindex="0"]', function (other) {
        if (other !== input) other.tabIndex = -1;
      }, map);
      if (input) input.tabIndex = 0;
    }
    // Scrolled into the box and clear of the row name stuck at its left edge.
    function reveal(input) {
      var seat = input.nextElementSibling;
      seat.scrollIntoView({ block: "nearest", inline: "nearest" });
      var rowName = input.closest(".seat-row").querySelector(".seat-row__label");
      if (!rowName) return;
      var covered = rowName.getBoundingClientRect().right + 4 - seat.getBoundingClientRect().left;
      if (covered > 0) map.scrollLeft -= covered;
    }

    each(".seat-input", function (input) { input.tabIndex = -1; }, map);
    var all = pickable(map);
    makeTabStop(all.filter(function (input) { return input.checked; })[0] || all[0] || null);

    map.addEventListener("focusin", function (event) {
      if (!event.target.classList.contains("seat-input")) return;
      makeTabStop(event.target);
      reveal(event.target);
    });

    map.addEventListener("keydown", function (event) {
      var input = event.target;
      if (!input.classList.contains("seat-input") || event.altKey || event.metaKey) return;
      var row = input.closest(".seat-row");
      var seats = pickable(row);
      var at = seats.indexOf(input);
      var target;
      switch (event.key) {
        case "ArrowRight": target = seats[at + 1]; break;
        case "ArrowLeft": target = seats[at - 1]; break;
        case "ArrowDown":
          target = row.nextElementSibling && nearestFrom(row.nextElementSibling, 1, middle(input));
          break;
        case "ArrowUp":
          target = row.previousElementSibling
            && nearestFrom(row.previousElementSibling, -1, middle(input));
          break;
        case "Home": target = event.ctrlKey ? pickable(map)[0] : seats[0]; break;
        case "End":
          seats = event.ctrlKey ? pickable(map) : seats;
          target = seats[seats.length - 1];
          break;
        default: return;
      }
      event.preventDefault();
      if (target) target.focus({ preventScroll: true });
    });

    var hint = document.querySelector("[data-seat-map-hint]");
    function showHint() {
      if (hint) hint.hidden = map.scrollWidth <= map.clientWidth + 1;
    }
    window.addEventListener("resize", showHint);
    showHint();

    return {
      // After live updates: a seat just taken is no tab stop; if it had the focus, the
      // nearest seat still free takes it.
      refresh: function (focused) {
        var stop = tabStop();
        if (stop && !stop.matches(":disabled")) return;
        var next = pickable(map)[0] || null;
        if (stop) {
          var row = stop.closest(".seat-row");
          next = nearestFrom(row, 1, middle(stop)) || nearestFrom(row, -1, middle(stop));
        }
        makeTabStop(next);
        if (next && focused === stop) next.focus({ preventScroll: true });
      }
    };
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
    // Back from the checkout, a page kept in the browser's memory would show the choice as
    // it was, without the hold made since: load it afresh.
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) window.location.reload();
    });
    poll(article, function (data) {
      setAvailability(article.querySelector("[data-availability]"), data.available);
      var taken = [];
      var focused = document.activeElement;
      (data.seats || []).forEach(function (seat) { setSeat(seat, taken); });
      if (seatMapControl) seatMapControl.refresh(focused);
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
    seatMapControl = seatMap();
    liveResource();
    liveHome();
    focusConflict();
  });
})();
