/* The staff seat plan: a click on a taken seat shows its booking (the row of the bookings
   table, as a card next to the map) and outlines its other seats. The seating list's
   print button. Without this script the table below the map says the same. */
(function () {
  "use strict";

  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  function seatDetails() {
    var map = document.querySelector(".seat-map--staff [data-seat-map]");
    var panel = document.querySelector("[data-seat-details]");
    if (!map || !panel) return;
    var body = panel.querySelector("[data-seat-details-body]");
    var headers = Array.prototype.map.call(
      document.querySelectorAll(".seat-plan__holders thead th"),
      function (th) { return th.textContent; }
    );

    function hide() {
      panel.hidden = true;
      each(".seat--shown", function (seat) { seat.classList.remove("seat--shown"); }, map);
      each(".seat-plan__holder--shown", function (row) {
        row.classList.remove("seat-plan__holder--shown");
      });
    }

    function show(reservation) {
      var row = document.getElementById("holder-" + reservation);
      if (!row) return;
      hide();
      var list = document.createElement("dl");
      Array.prototype.forEach.call(row.cells, function (cell, index) {
        // The row's own buttons stay in the table: the card sits inside the seat form.
        if (!cell.textContent.trim() || cell.querySelector("form")) return;
        var term = document.createElement("dt");
        term.textContent = headers[index] || "";
        var value = document.createElement("dd");
        value.innerHTML = cell.innerHTML;
        list.appendChild(term);
        list.appendChild(value);
      });
      body.replaceChildren(list);
      panel.hidden = false;
      row.classList.add("seat-plan__holder--shown");
      each('.seat[data-reservation="' + reservation + '"]', function (seat) {
        seat.classList.add("seat--shown");
      }, map);
    }

    map.addEventListener("click", function (event) {
      var target = event.target;
      var seat = target.classList.contains("seat-input")
        ? target.nextElementSibling
        : target.closest(".seat");
      if (seat && seat.dataset.reservation) show(seat.dataset.reservation);
    });
    panel.querySelector("[data-seat-details-close]").addEventListener("click", hide);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !panel.hidden) hide();
    });
  }

  function printButton() {
    each("[data-print]", function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    seatDetails();
    printButton();
  });
})();
