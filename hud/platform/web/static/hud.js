// hud web pages: live updates and trace replay. Hand-written, no dependencies; every page
// works without it (it only refreshes running views and adds replay controls).
(function () {
  "use strict";

  // Live updates: a <main data-live="N"> page re-fetches itself every N seconds and swaps its
  // <main> while the server still marks it live (a running job, an in-flight rollout).
  function live() {
    var main = document.querySelector("main[data-live]");
    if (!main) return;
    var every = Math.max(1, parseInt(main.getAttribute("data-live"), 10) || 3) * 1000;
    setTimeout(function tick() {
      fetch(location.href, { headers: { "X-Hud-Live": "1" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) return;
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("main");
          if (!fresh) return;
          var cur = document.querySelector("main");
          cur.innerHTML = fresh.innerHTML;
          if (fresh.hasAttribute("data-live")) {
            setTimeout(tick, every);
          } else {
            cur.removeAttribute("data-live");
          }
          replay();
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }, every);
  }

  // Replay: step through a trace's timeline (first step .. the whole trace).
  function replay() {
    var list = document.querySelector("ol.timeline");
    var bar = document.querySelector(".replay");
    if (!list || !bar || bar.getAttribute("data-ready")) return;
    var steps = Array.prototype.slice.call(list.children);
    if (!steps.length) return;
    bar.setAttribute("data-ready", "1");
    bar.hidden = false;
    var slider = bar.querySelector("input[type=range]");
    var label = bar.querySelector(".pos");
    var timer = null;
    slider.max = String(steps.length);
    slider.value = String(steps.length);
    function show(n) {
      n = Math.max(1, Math.min(steps.length, n));
      slider.value = String(n);
      label.textContent = n + " / " + steps.length;
      steps.forEach(function (li, i) {
        li.classList.toggle("hidden", i >= n);
        li.classList.toggle("current", i === n - 1 && n < steps.length);
      });
    }
    function stop() { if (timer) { clearInterval(timer); timer = null; } play.textContent = "Play"; }
    var play = bar.querySelector("[data-act=play]");
    bar.querySelector("[data-act=first]").onclick = function () { stop(); show(1); };
    bar.querySelector("[data-act=prev]").onclick = function () { stop(); show(+slider.value - 1); };
    bar.querySelector("[data-act=next]").onclick = function () { stop(); show(+slider.value + 1); };
    bar.querySelector("[data-act=last]").onclick = function () { stop(); show(steps.length); };
    play.onclick = function () {
      if (timer) { stop(); return; }
      if (+slider.value >= steps.length) show(1);
      play.textContent = "Pause";
      timer = setInterval(function () {
        if (+slider.value >= steps.length) { stop(); return; }
        show(+slider.value + 1);
        steps[+slider.value - 1].scrollIntoView({ block: "nearest" });
      }, 900);
    };
    slider.oninput = function () { stop(); show(+slider.value); };
    show(steps.length);
  }

  document.addEventListener("DOMContentLoaded", function () { live(); replay(); });
})();
