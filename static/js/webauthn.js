/* Passkeys: drives navigator.credentials.create/get for the elements marked data-webauthn.
   The server sends WebAuthn options as JSON with base64url strings; the browser API wants
   ArrayBuffers, so ids and challenges are converted both ways here. The CSRF token is read from the
   page's form field (not the cookie, whose name differs in production) and sent as X-CSRFToken. */
(function () {
  "use strict";

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var raw = atob(base64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeDescriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, {id: toBuffer(c.id)}); });
  }

  function creationOptions(o) {
    o.challenge = toBuffer(o.challenge);
    o.user.id = toBuffer(o.user.id);
    o.excludeCredentials = decodeDescriptors(o.excludeCredentials);
    return o;
  }

  function requestOptions(o) {
    o.challenge = toBuffer(o.challenge);
    o.allowCredentials = decodeDescriptors(o.allowCredentials);
    return o;
  }

  function credentialJSON(cred) {
    var r = cred.response, response = {clientDataJSON: toBase64url(r.clientDataJSON)};
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return {
      id: cred.id, rawId: toBase64url(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(root, url, body) {
    var token = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json"},
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) throw new Error(data.detail || "The server refused the request.");
        return data;
      });
    });
  }

  function run(root) {
    var mode = root.getAttribute("data-webauthn");
    var status = root.querySelector("[data-webauthn-status]");
    var nameInput = root.querySelector("input[name=passkey_name]");
    status.textContent = mode === "register" ? "Follow your browser's prompt to create the passkey…"
                                             : "Follow your browser's prompt to use your passkey…";
    return post(root, root.getAttribute("data-options-url")).then(function (options) {
      if (mode === "register") {
        return navigator.credentials.create({publicKey: creationOptions(options)});
      }
      return navigator.credentials.get({publicKey: requestOptions(options)}).catch(function (err) {
        // The authenticator refused (e.g. user verification failed) or the prompt was cancelled:
        // tell the server, which spends the challenge and records the refusal, then show it.
        var reported = post(root, root.getAttribute("data-verify-url"), {clientError: err.name});
        return reported.then(function () { throw err; }, function () { throw err; });
      });
    }).then(function (cred) {
      var body = {credential: credentialJSON(cred)};
      if (nameInput) body.name = nameInput.value;
      return post(root, root.getAttribute("data-verify-url"), body);
    }).then(function (data) {
      status.textContent = "Done.";
      window.location.assign(data.redirect);
    }).catch(function (err) {
      var message = err && err.name === "NotAllowedError"
        ? "The passkey prompt was cancelled or timed out." : (err && err.message) || "Something went wrong.";
      status.textContent = message;
      status.setAttribute("data-state", "error");
    });
  }

  document.querySelectorAll("[data-webauthn]").forEach(function (root) {
    var button = root.querySelector("button");
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      root.querySelector("[data-webauthn-status]").textContent = "This browser does not support passkeys.";
      return;
    }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      button.disabled = true;
      run(root).then(function () { button.disabled = false; });
    });
  });
})();
