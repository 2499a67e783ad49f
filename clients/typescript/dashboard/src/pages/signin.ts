// The sign-in page: a user name and password (HTTP basic, as `sky api login`
// takes them) or a service-account token. The credentials are checked with
// WhoAmI before anything else is fetched; a password is then traded for a
// 12-hour token (when the server allows it), which is all the tab keeps.

import {
  describe,
  isUnauthenticated,
  saveCredentials,
  sessionCredentials,
  whoAmI,
  type Credentials,
  type Session,
} from "../api.js";
import { field, h } from "../dom.js";
import type { Page } from "../ui.js";

/** Whether the page was loaded from this machine (localhost, 127.x, [::1]). */
function loopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return (
    host === "localhost" ||
    host.endsWith(".localhost") ||
    /^127(\.\d{1,3}){3}$/.test(host) ||
    host === "[::1]" ||
    host === "::1"
  );
}

export function signinPage(page: Page, message: string, signedIn: (c: Credentials, s: Session) => void): void {
  const user = h("input", {
    id: "signin-user",
    name: "username",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
  });
  const password = h("input", {
    id: "signin-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
  });
  const token = h("input", {
    id: "signin-token",
    name: "token",
    type: "password",
    autocomplete: "off",
    placeholder: "sky_…",
    spellcheck: "false",
  });
  const submit = h("button", { id: "signin-submit", type: "submit", class: "btn primary" }, "Sign in");
  const error = h("p", { id: "signin-error", class: "form-error", role: "alert", hidden: !message }, message);
  const insecure =
    location.protocol === "http:" && !loopback(location.hostname)
      ? h(
          "p",
          { id: "signin-insecure", class: "warning", role: "note" },
          h("strong", null, "Not encrypted: "),
          "this page was loaded over plain http, so your password or token travels unencrypted. " +
            "Ask the server's operator for an https address.",
        )
      : null;

  const form = h(
    "form",
    { id: "signin", class: "card signin", novalidate: true },
    h("h1", null, "Sign in"),
    insecure,
    h("p", { class: "hint" }, "Use your user name and password, or a service-account token."),
    field("User name", user),
    field("Password", password),
    h("div", { class: "or" }, "or"),
    field("Service-account token", token),
    submit,
    error,
  );

  const fail = (text: string): void => {
    error.textContent = text;
    error.hidden = false;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let credentials: Credentials;
    if (token.value.trim()) credentials = { kind: "token", token: token.value.trim() };
    else if (user.value.trim()) credentials = { kind: "basic", user: user.value.trim(), password: password.value };
    else return fail("Enter a user name and password, or a token.");
    submit.disabled = true;
    error.hidden = true;
    try {
      const session = await whoAmI(credentials, page.signal);
      // Only the token is kept; a server that refuses one keeps the password.
      credentials = await sessionCredentials(credentials, page.signal);
      saveCredentials(credentials);
      signedIn(credentials, session);
    } catch (err) {
      if (page.signal.aborted) return;
      const { codeName, message: text } = describe(err);
      fail(isUnauthenticated(err) ? text : `${codeName}: ${text}`);
    } finally {
      submit.disabled = false;
    }
  });

  page.root.append(form);
  page.ready();
  user.focus();
}
