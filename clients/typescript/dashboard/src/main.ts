// The dashboard's entry point: asks the server who we are (WhoAmI), shows the
// sign-in page or the header and the page the address (#/...) names, and
// routes between pages, aborting the calls of the page left behind.

import {
  clearCredentials,
  currentCredentials,
  describe,
  getSession,
  isUnauthenticated,
  loadCredentials,
  revokeSessionToken,
  setSession,
  useCredentials,
  whoAmI,
  type Session,
} from "./api.js";
import { byId, h } from "./dom.js";
import { roleName } from "./format.js";
import { clusterPage } from "./pages/cluster.js";
import { clustersPage } from "./pages/clusters.js";
import { forgetInfraCheck, infraPage } from "./pages/infra.js";
import { jobPage, managedJobPage, requestPage } from "./pages/logs.js";
import { managedPage } from "./pages/managed.js";
import { requestsPage } from "./pages/requests.js";
import { signinPage } from "./pages/signin.js";
import { usersPage } from "./pages/users.js";
import { clearError, clearNotice, showError, type Page } from "./ui.js";

type Render = (page: Page, ...params: string[]) => void;

/** Routes: the address pattern, the page's name (main#page[data-page]), its nav link, its renderer. */
const ROUTES: [RegExp, string, string, Render][] = [
  [/^\/?$/, "clusters", "clusters", clustersPage],
  [/^\/clusters\/?$/, "clusters", "clusters", clustersPage],
  // Job ids are checked by the page (0 or "abc" is no job: a clear "not found").
  [/^\/clusters\/([^/]+)\/jobs\/([^/]+)\/?$/, "job", "clusters", jobPage],
  [/^\/clusters\/([^/]+)\/?$/, "cluster", "clusters", clusterPage],
  [/^\/managed\/?$/, "managed", "managed", managedPage],
  [/^\/managed\/([^/]+)\/?$/, "managed-job", "managed", managedJobPage],
  [/^\/requests\/?$/, "requests", "requests", requestsPage],
  [/^\/requests\/(.+)$/, "request", "requests", requestPage],
  [/^\/infra\/?$/, "infra", "infra", infraPage],
  [/^\/users\/?$/, "users", "users", usersPage],
];

const NAV: [string, string][] = [
  ["clusters", "Clusters"],
  ["managed", "Managed jobs"],
  ["requests", "Requests"],
  ["infra", "Infra"],
  ["users", "Users"],
];

let controller: AbortController | undefined;
let interactive = false;

/** Leaves the current page: aborts its calls, empties main#page. */
function leave(): HTMLElement {
  controller?.abort();
  controller = new AbortController();
  clearError();
  clearNotice();
  const main = byId("page");
  main.replaceChildren();
  delete main.dataset.ready;
  return main;
}

/** A page context for main#page. */
function pageContext(main: HTMLElement, signal: AbortSignal): Page {
  return {
    root: main,
    signal,
    ready() {
      if (signal.aborted) return;
      main.dataset.ready = "1";
      if (!interactive) {
        interactive = true;
        performance.mark("sky:interactive");
        document.documentElement.dataset.interactiveMs = String(Math.round(performance.now()));
      }
    },
    fail(err, owner) {
      if (signal.aborted) return;
      if (isUnauthenticated(err) && getSession()) {
        signOut(`Signed out: ${describe(err).message}`);
        return;
      }
      showError(err, owner);
    },
  };
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** Shows the page the address names. */
function route(): void {
  if (!getSession()) return;
  const path = location.hash.replace(/^#/, "").split("?")[0] ?? "";
  const main = leave();
  const signal = controller!.signal;
  const page = pageContext(main, signal);
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const a of document.querySelectorAll<HTMLAnchorElement>("a[data-nav]")) {
    const active = found !== undefined && a.dataset.nav === found[2];
    a.classList.toggle("active", active);
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!found) {
    main.dataset.page = "notfound";
    main.append(
      h("h1", null, "Not found"),
      h("p", null, "No such page. ", h("a", { href: "#/clusters" }, "Go to clusters")),
    );
    page.ready();
    return;
  }
  const [pattern, name, , render] = found;
  main.dataset.page = name;
  const params = (pattern.exec(path) ?? []).slice(1).map(decode);
  render(page, ...params);
}

/** Fills the header for a signed-in session (or empties it). */
function header(session: Session | undefined): void {
  const nav = byId("nav");
  const account = byId("account");
  if (!session) {
    nav.replaceChildren();
    account.replaceChildren();
    return;
  }
  nav.replaceChildren(
    // A server without authentication (a local one) has no users to manage.
    ...NAV.filter(([key]) => key !== "users" || (session.admin && !session.noAuth)).map(([key, label]) =>
      h("a", { href: `#/${key}`, "data-nav": key }, label),
    ),
  );
  const signout = h("button", { type: "button", id: "signout", class: "btn link", hidden: session.noAuth }, "Sign out");
  signout.addEventListener("click", async () => {
    // The token a password sign-in created is revoked first (a few seconds at most).
    signout.disabled = true;
    await revokeSessionToken(currentCredentials());
    signOut();
  });
  account.replaceChildren(
    h(
      "span",
      { id: "whoami", title: `user id ${session.user.id}` },
      h("span", { class: "user" }, session.user.name),
      " ",
      h("span", { class: "role" }, roleName(session.user.role)),
    ),
    signout,
  );
}

/** Enters the dashboard as `session`. */
function enter(session: Session): void {
  setSession(session);
  header(session);
  route();
}

/** Forgets the credentials and shows the sign-in page (with `message`, if any). */
function signOut(message = ""): void {
  forgetInfraCheck();
  clearCredentials();
  useCredentials(undefined);
  setSession(undefined);
  header(undefined);
  showSignin(message);
}

function showSignin(message: string): void {
  const main = leave();
  main.dataset.page = "signin";
  const page = pageContext(main, controller!.signal);
  signinPage(page, message, (credentials, session) => {
    useCredentials(credentials);
    enter(session);
  });
}

async function boot(): Promise<void> {
  window.addEventListener("hashchange", route);
  const main = leave();
  main.append(h("p", { class: "loading" }, "Connecting to the API server…"));
  const stored = loadCredentials();
  try {
    const session = await whoAmI(stored, controller!.signal);
    useCredentials(stored);
    enter(session);
  } catch (err) {
    if (isUnauthenticated(err)) {
      if (stored) clearCredentials();
      showSignin(stored ? describe(err).message : "");
      return;
    }
    const failed = leave();
    failed.dataset.page = "error";
    showError(err);
    const retry = h("button", { type: "button", class: "btn", id: "retry" }, "Try again");
    retry.addEventListener("click", () => void boot());
    failed.append(h("h1", null, "Cannot reach the API server"), h("p", null, describe(err).message), retry);
    failed.dataset.ready = "1";
  }
}

void boot();
