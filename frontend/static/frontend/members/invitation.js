// An invitation link: what it offers, then accept it as the logged-in user, or create an
// account through it. Either way the API decides; a used or expired link says so.

import { api } from "../api.js";

const root = document.getElementById("invitation-page");
const token = encodeURIComponent(root.dataset.token);
const result = document.getElementById("invitation-result");
const loggedIn = Boolean(root.dataset.username);

function say(message, { error = false } = {}) {
  result.textContent = message;
  result.classList.toggle("error", error);
}

async function accept(body) {
  const organization = await api(`invitations/${token}/accept`, { method: "POST", body });
  document.getElementById("invitation-accept").hidden = true;
  document.getElementById("invitation-signup").hidden = true;
  say(`You are now a member of ${organization.name} as ${organization.role}.`);
  const home = document.createElement("a");
  home.href = "/";
  home.textContent = "Go to your projects";
  result.append(" ", home);
  root.dataset.accepted = "true";
}

try {
  const offer = await api(`invitations/${token}`);
  const from = offer.invited_by ? `${offer.invited_by} invites you` : "You are invited";
  document.getElementById("invitation-title").textContent = `Join ${offer.organization}`;
  document.getElementById("invitation-offer").textContent = `${from} to join ${offer.organization} as ${offer.role}.`;
  document.getElementById(loggedIn ? "invitation-accept" : "invitation-signup").hidden = false;
} catch (error) {
  document.getElementById("invitation-offer").textContent = error.message;
}
root.dataset.ready = "true";

document.getElementById("accept-button").addEventListener("click", (event) => {
  event.target.disabled = true;
  accept(undefined).catch((error) => {
    event.target.disabled = false;
    say(error.message, { error: true });
  });
});

document.getElementById("signup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  accept(Object.fromEntries(new FormData(event.target))).catch((error) => say(error.message, { error: true }));
});
