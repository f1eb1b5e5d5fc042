// The members page (admins): invite by email link, create accounts, change roles, deactivate,
// and see each member's last two weeks. The page only shows; the API checks every write.

import { api, listAll } from "../api.js";
import { h } from "../project/dom.js";
import { sparkline } from "./sparkline.js";

const ROLES = [
  ["annotator", "Annotator"],
  ["reviewer", "Reviewer"],
  ["admin", "Admin"],
];

const $ = (selector) => document.querySelector(selector);
const root = $("#members-page");
const orgPath = `orgs/${root.dataset.org}`;

function say(slot, message, { error = false } = {}) {
  slot.replaceChildren(message ? h("p", { className: error ? "error" : "" }, message) : "");
}

const notice = $("#page-notice");
function notify(message, { error = false } = {}) {
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = !message;
}

class MemberTable {
  constructor({ table, status }) {
    Object.assign(this, { table, status });
  }

  async reload() {
    const [members, activity] = await Promise.all([listAll(`${orgPath}/members/`), api(`${orgPath}/members/activity?days=14`)]);
    const byMember = new Map(activity.map((row) => [row.membership_id, row]));
    members.sort((a, b) => a.username.localeCompare(b.username));
    this.table.tBodies[0].replaceChildren(...members.map((member) => this.#row(member, byMember.get(member.id))));
  }

  #row(member, activity) {
    const who = h("td", {}, h("span", { className: "member-name" }, member.username), member.email ? h("span", { className: "hint" }, ` ${member.email}`) : "");
    const role = h("select", { "aria-label": `Role of ${member.username}`, disabled: !member.is_active });
    for (const [value, text] of ROLES) role.append(h("option", { value, selected: value === member.role }, text));
    role.addEventListener("change", () => this.#change(member, { role: role.value }, `${member.username} is now ${role.value}.`));
    const toggle = h(
      "button",
      { type: "button", className: "secondary", "aria-label": `${member.is_active ? "Deactivate" : "Activate"} ${member.username}` },
      member.is_active ? "Deactivate" : "Activate",
    );
    toggle.addEventListener("click", () => {
      const verb = member.is_active ? "deactivated: they can no longer open anything of this organisation" : "active again";
      this.#change(member, { is_active: !member.is_active }, `${member.username} is ${verb}.`);
    });
    const days = activity?.days ?? [];
    const rate = activity?.acceptance_rate;
    const decided = activity ? activity.proposals_accepted + activity.proposals_rejected : 0;
    return h(
      "tr",
      { className: member.is_active ? "" : "inactive", "data-member": member.username },
      who,
      h("td", {}, role, member.is_active ? "" : h("span", { className: "hint" }, " deactivated")),
      h("td", {}, sparkline(days.map((d) => d.boxes), `${member.username}: boxes per day`)),
      h("td", {}, sparkline(days.map((d) => d.frames), `${member.username}: frames per day`)),
      h("td", { className: "rate" }, rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)} % of ${decided}`),
      h("td", {}, toggle),
    );
  }

  async #change(member, body, done) {
    try {
      await api(`${orgPath}/members/${member.id}`, { method: "PATCH", body });
      say(this.status, done);
    } catch (error) {
      say(this.status, error.message, { error: true });
    }
    await this.reload();
  }
}

class Invitations {
  constructor({ form, result, list }) {
    Object.assign(this, { form, result, list });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#invite();
    });
  }

  async reload() {
    const pending = await listAll(`${orgPath}/invitations/`);
    if (!pending.length) {
      this.list.replaceChildren(h("li", { className: "empty" }, "None."));
      return;
    }
    this.list.replaceChildren(...pending.map((invitation) => this.#item(invitation)));
  }

  #item(invitation) {
    const until = new Date(invitation.expires_at).toLocaleDateString();
    const revoke = h("button", { type: "button", className: "secondary", "aria-label": `Withdraw the invitation of ${invitation.email}` }, "Withdraw");
    revoke.addEventListener("click", async () => {
      try {
        await api(`${orgPath}/invitations/${invitation.id}`, { method: "DELETE" });
      } catch (error) {
        say(this.result, error.message, { error: true });
      }
      await this.reload();
    });
    return h("li", { "data-email": invitation.email }, h("span", {}, `${invitation.email} as ${invitation.role}, until ${until}`), revoke);
  }

  async #invite() {
    const body = Object.fromEntries(new FormData(this.form));
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const issued = await api(`${orgPath}/invitations/`, { method: "POST", body });
      await this.reload(); // the list shows the invitation by the time its link does
      const link = h("input", { className: "invitation-link", readOnly: true, value: issued.url, "aria-label": `Invitation link for ${body.email}` });
      link.addEventListener("focus", () => link.select());
      const how = issued.mailed ? `Mailed to ${body.email}. The link, to send another way:` : `The mail could not be sent; send ${body.email} this link yourself:`;
      this.result.replaceChildren(h("p", {}, how), link);
      this.form.elements.email.value = "";
    } catch (error) {
      say(this.result, error.message, { error: true });
    } finally {
      button.disabled = false;
    }
  }
}

function bindAccountForm({ form, result, onCreated }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    try {
      const member = await api(`${orgPath}/members/`, { method: "POST", body });
      say(result, `Created ${member.username} as ${member.role}.`);
      form.reset();
      await onCreated();
    } catch (error) {
      say(result, error.message, { error: true });
    }
  });
}

try {
  const organization = await api(`${orgPath}/`);
  $("#organization-name").textContent = organization.name;
  document.title = `Members of ${organization.name} · Labeller`;
  if (organization.role !== "admin") throw Object.assign(new Error("Only the organisation's admins manage its members."), { status: 403 });
  for (const element of root.querySelectorAll("[data-after-load]")) element.hidden = false;
  const table = new MemberTable({ table: $("#member-table"), status: $("#member-status") });
  const invitations = new Invitations({ form: $("#invite-form"), result: $("#invite-result"), list: $("#invitation-list") });
  bindAccountForm({ form: $("#account-form"), result: $("#account-result"), onCreated: () => table.reload() });
  await Promise.all([table.reload(), invitations.reload()]);
  root.dataset.ready = "true";
} catch (error) {
  notify(error.status === 404 ? "This organisation does not exist, or you are not a member." : error.message, { error: true });
}
