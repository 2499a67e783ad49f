// #/users (admins): users and their roles and passwords, and the
// service-account tokens of everyone; a new token's secret is shown once.

import { Code, ConnectError } from "@connectrpc/connect";

import { Role, type TokenInfo, type UserInfo } from "../../../src/gen/skypilot/v1/users_pb.js";
import { api, getSession, isAdmin, unary } from "../api.js";
import { field, h } from "../dom.js";
import { absolute, date, roleName } from "../format.js";
import { KeyedTable, actionButton, cell, dangerAction, heading, showNotice, timeCell, type Page } from "../ui.js";

const ROLES: [Role, string][] = [
  [Role.USER, "user"],
  [Role.ADMIN, "admin"],
];

function roleSelect(id: string | null, selected: Role): HTMLSelectElement {
  return h(
    "select",
    { id, "aria-label": "Role" },
    ROLES.map(([role, label]) => h("option", { value: String(role), selected: role === selected }, label)),
  );
}

/** The controls of one user's row: role, password, delete. */
function userControls(page: Page, u: UserInfo, reload: () => Promise<void>): HTMLElement[] {
  const role = roleSelect(null, u.role);
  const setRole = actionButton(page, {
    action: "set-role",
    label: "Set role",
    run: async () => {
      await api.users.setRole({ name: u.name, role: Number(role.value) as Role }, unary(page.signal));
      showNotice(`${u.name} is now ${roleName(Number(role.value) as Role)}.`);
      await reload();
    },
  });
  const password = h("input", {
    type: "password",
    autocomplete: "new-password",
    placeholder: "New password",
    "aria-label": `New password for ${u.name}`,
    hidden: true,
  });
  const save = actionButton(page, {
    action: "save-password",
    label: "Save",
    run: async () => {
      await api.users.setPassword({ name: u.name, password: password.value }, unary(page.signal));
      password.value = "";
      showNotice(`Password of ${u.name} set.`);
      toggle(false);
    },
  });
  save.hidden = true;
  const setPassword = h("button", { type: "button", class: "btn", "data-action": "set-password" }, "Set password");
  const toggle = (open: boolean): void => {
    password.hidden = !open;
    save.hidden = !open;
    setPassword.textContent = open ? "Close" : "Set password";
    if (open) password.focus();
  };
  setPassword.addEventListener("click", () => toggle(password.hidden));
  const remove = actionButton(
    page,
    dangerAction("delete", "Delete", async () => {
      await api.users.deleteUser({ name: u.name }, unary(page.signal));
      showNotice(`User ${u.name} deleted.`);
      await reload();
    }),
  );
  // A form of its own, so that Enter saves and password managers see the field.
  const passwordForm = h("form", { class: "inline" }, setPassword, password, save);
  passwordForm.addEventListener("submit", (event) => {
    event.preventDefault();
    save.click();
  });
  return [h("span", { class: "inline" }, role, setRole), passwordForm, remove];
}

export function usersPage(page: Page): void {
  if (!isAdmin()) {
    page.root.append(heading("Users"), h("p", { class: "empty" }, "This page is for admins: only admins see users."));
    page.ready();
    return;
  }
  let users: UserInfo[] = [];

  const userRows = h("tbody");
  const usersTable = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "grid" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Name", "ID", "Role", "Created", "Manage"].map((l) =>
            h("th", { scope: "col", class: l === "Manage" ? "actions" : undefined }, l),
          ),
        ),
      ),
      userRows,
    ),
  );

  const tokens = new KeyedTable<TokenInfo>(page, {
    attr: "data-token",
    key: (t) => t.tokenId,
    columns: ["ID", "Name", "User", "Created", "Expires"],
    cells: (t) => {
      const expires = date(t.expiresAt);
      return [
        cell("id", h("span", { class: "mono" }, t.tokenId)),
        cell("name", t.name || "-"),
        cell("user", t.userName),
        timeCell(date(t.createdAt), "created"),
        h(
          "td",
          { "data-col": "expires", title: absolute(expires) || undefined },
          // A short-lived token (the dashboard's own last 12 hours) shows its time too.
          !expires
            ? "never"
            : expires.getTime() - Date.now() < 2 * 86_400_000
              ? expires.toLocaleString()
              : expires.toLocaleDateString(),
        ),
      ];
    },
    actions: (t) => [
      dangerAction("revoke", "Revoke", async () => {
        await api.users.revokeToken({ tokenId: t.tokenId }, unary(page.signal));
        showNotice(`Token ${t.name || t.tokenId} revoked.`);
        await load();
      }),
    ],
    empty: "No tokens.",
  });

  // Create a user.
  const newName = h("input", { id: "new-user-name", required: true, autocomplete: "off", autocapitalize: "none" });
  const newPassword = h("input", {
    id: "new-user-password",
    type: "password",
    required: true,
    autocomplete: "new-password",
  });
  const newRole = roleSelect("new-user-role", Role.USER);
  const createUser = h(
    "form",
    { id: "create-user", class: "card form-row" },
    h("h2", null, "New user"),
    field("Name", newName),
    field("Password", newPassword),
    field("Role", newRole),
    h("button", { type: "submit", class: "btn primary" }, "Create user"),
  );
  createUser.addEventListener("submit", (event) => {
    event.preventDefault();
    void submit(createUser, async () => {
      const res = await api.users.createUser(
        { name: newName.value.trim(), password: newPassword.value, role: Number(newRole.value) as Role },
        unary(page.signal),
      );
      newName.value = "";
      newPassword.value = "";
      showNotice(`User ${res.user?.name ?? ""} created.`);
    });
  });

  // Create a token.
  const tokenName = h("input", { id: "new-token-name", required: true, autocomplete: "off" });
  const tokenUser = h("input", {
    id: "new-token-user",
    list: "user-names",
    autocomplete: "off",
    autocapitalize: "none",
    placeholder: getSession()?.user.name ?? "",
  });
  const userNames = h("datalist", { id: "user-names" });
  const tokenExpires = h(
    "select",
    { id: "new-token-expires" },
    [
      ["0", "never"],
      ["86400", "1 day"],
      ["604800", "7 days"],
      ["2592000", "30 days"],
      ["7776000", "90 days"],
      ["31536000", "1 year"],
    ].map(([value, label]) => h("option", { value }, label)),
  );
  const secretBox = h("div", { class: "secret", hidden: true });
  const createToken = h(
    "form",
    { id: "create-token", class: "card form-row" },
    h("h2", null, "New token"),
    field("Name", tokenName),
    field("User (empty: you)", tokenUser),
    userNames,
    field("Expires", tokenExpires),
    h("button", { type: "submit", class: "btn primary" }, "Create token"),
    secretBox,
  );
  createToken.addEventListener("submit", (event) => {
    event.preventDefault();
    void submit(createToken, async () => {
      const res = await api.users.createToken(
        {
          name: tokenName.value.trim(),
          userName: tokenUser.value.trim(),
          expiresInSeconds: BigInt(tokenExpires.value),
        },
        unary(page.signal),
      );
      tokenName.value = "";
      const code = h("code", { id: "new-token" }, res.secret);
      const copy = h("button", { type: "button", class: "btn" }, "Copy");
      copy.addEventListener("click", () => {
        getSelection()?.selectAllChildren(code);
        void navigator.clipboard?.writeText(res.secret).then(() => (copy.textContent = "Copied"));
      });
      secretBox.replaceChildren(
        h("p", null, h("strong", null, "Copy this token now: it is shown only once.")),
        h("div", { class: "secret-value" }, code, copy),
      );
      secretBox.hidden = false;
    });
  });

  async function submit(form: HTMLFormElement, run: () => Promise<void>): Promise<void> {
    const button = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
    button.disabled = true;
    try {
      await run();
      await load();
    } catch (err) {
      page.fail(err);
    } finally {
      button.disabled = false;
    }
  }

  async function load(): Promise<void> {
    const [u, t] = await Promise.all([
      api.users.listUsers({}, unary(page.signal)),
      api.users.listTokens({}, unary(page.signal)),
    ]);
    users = u.users;
    userRows.replaceChildren(
      ...users.map((user) =>
        h(
          "tr",
          { "data-user": user.name },
          cell("name", user.name),
          cell("id", h("span", { class: "mono" }, user.id)),
          cell("role", roleName(user.role)),
          timeCell(date(user.createdAt), "created"),
          h("td", { class: "actions", "data-col": "actions" }, userControls(page, user, load)),
        ),
      ),
    );
    userNames.replaceChildren(...users.map((user) => h("option", { value: user.name })));
    tokens.update(t.tokens);
  }

  page.root.append(
    heading("Users"),
    usersTable,
    createUser,
    h("h2", null, "Service-account tokens"),
    tokens.el,
    createToken,
  );
  load()
    .catch((err) => {
      // A local server has no users: say so in place of the page.
      if (ConnectError.from(err).code !== Code.FailedPrecondition) return page.fail(err);
      page.root.replaceChildren(heading("Users"), h("p", { class: "empty" }, ConnectError.from(err).rawMessage));
    })
    .finally(() => page.ready());
}
