/*
 * Nudge storefront snippet: reports the visitor's cart and shows a
 * "Get cart reminders in Telegram" button with the visitor's own deep link.
 *
 *   <script src="https://NUDGE/static/nudge.js" data-shop="42" async
 *           data-label="Get cart reminders in Telegram"
 *           data-target="#nudge-button"
 *           data-cart='{"currency":"EUR","items":[{"product_id":"501","title":"Shirt","price":"49.90","quantity":1}]}'></script>
 *
 * The cart comes from, in order: the data-cart attribute, window.NudgeCart (same shape), or
 * Shopify's /cart.js when the page is a Shopify store. Call window.Nudge.report(cart) or
 * dispatch a "nudge:cart" event (detail = cart) when the cart changes. No dependencies.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.Nudge) return;
  var data = script.dataset;
  var shop = data.shop;
  var base = (data.endpoint || new URL(script.src).origin).replace(/\/$/, "");
  var label = data.label || "Get cart reminders in Telegram";
  var KEY = "nudge_cart_token";

  function randomToken() {
    var bytes = new Uint8Array(24);
    window.crypto.getRandomValues(bytes);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function cartToken() {
    var token = null;
    try { token = window.localStorage.getItem(KEY); } catch (e) { /* storage blocked */ }
    if (!token || !/^[A-Za-z0-9_-]{22,128}$/.test(token)) {
      token = randomToken();
      try { window.localStorage.setItem(KEY, token); } catch (e) { /* keep it in memory */ }
    }
    return token;
  }

  function absolute(link) {
    if (!link) return undefined;
    try { return new URL(link, window.location.origin).href; } catch (e) { return undefined; }
  }

  function normalize(cart) {
    var items = (cart.items || []).slice(0, 100).map(function (item) {
      var line = {
        product_id: String(item.product_id),
        title: String(item.title || item.product_title || "").slice(0, 500) || "?",
        price: String(item.price),
        quantity: Number(item.quantity) || 1
      };
      if (item.variant_id) line.variant_id = String(item.variant_id);
      if (item.url) line.url = absolute(item.url);
      if (item.image) line.image = absolute(item.image);
      return line;
    });
    return {
      cart_token: cartToken(),
      items: items,
      currency: String(cart.currency || "").toUpperCase(),
      url: cart.url ? absolute(cart.url) : window.location.origin + window.location.pathname
    };
  }

  function fromShopify(cart) {
    return {
      currency: cart.currency,
      url: "/cart",
      items: (cart.items || []).map(function (item) {
        return {
          product_id: item.product_id,
          variant_id: item.variant_id,
          title: item.product_title || item.title,
          price: (item.price / 100).toFixed(2),
          quantity: item.quantity,
          url: item.url,
          image: item.image
        };
      })
    };
  }

  function button(link) {
    var anchor = document.getElementById("nudge-telegram-button");
    if (!anchor) {
      anchor = document.createElement("a");
      anchor.id = "nudge-telegram-button";
      anchor.className = "nudge-telegram";
      anchor.target = "_blank";
      anchor.rel = "noopener";
      anchor.textContent = label;
      var target = data.target && document.querySelector(data.target);
      if (target) target.appendChild(anchor);
      else script.parentNode.insertBefore(anchor, script.nextSibling);
    }
    anchor.href = link;
  }

  function report(cart) {
    if (!shop || !cart) return Promise.resolve(null);
    return fetch(base + "/storefront/" + encodeURIComponent(shop) + "/cart", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify(normalize(cart))
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && answer.deep_link) button(answer.deep_link);
        return answer;
      })
      .catch(function () { return null; });
  }

  function initialCart() {
    if (data.cart) {
      try { return Promise.resolve(JSON.parse(data.cart)); } catch (e) { /* fall through */ }
    }
    if (window.NudgeCart) return Promise.resolve(window.NudgeCart);
    if (window.Shopify && window.Shopify.shop) {
      return fetch("/cart.js", { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(fromShopify)
        .catch(function () { return null; });
    }
    return Promise.resolve(null);
  }

  window.Nudge = { report: report, token: cartToken };
  document.addEventListener("nudge:cart", function (event) { report(event.detail); });
  initialCart().then(report);
})();
