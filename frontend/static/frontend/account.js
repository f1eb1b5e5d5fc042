// The account page: shows, issues and revokes the caller's script token through the API.
import { api, ApiError } from "./api.js";

const statusLine = document.getElementById("token-status");
const keyField = document.getElementById("token-key");
const showButton = document.getElementById("token-show");
const revokeButton = document.getElementById("token-revoke");

function describe(token) {
  const expires = new Date(token.expires).toLocaleString();
  statusLine.textContent = `Your token was issued ${new Date(token.created).toLocaleString()} and expires ${expires}.`;
  revokeButton.disabled = false;
}

function describeNone() {
  statusLine.textContent = "You have no live token.";
  keyField.hidden = true;
  keyField.textContent = "";
  revokeButton.disabled = true;
}

async function load() {
  try {
    describe(await api("token"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) describeNone();
    else throw error;
  }
}

async function act(work) {
  showButton.disabled = revokeButton.disabled = true;
  try {
    await work();
  } catch (error) {
    statusLine.textContent = `Could not do that: ${error.message}`;
  } finally {
    showButton.disabled = false;
  }
}

showButton.addEventListener("click", () =>
  act(async () => {
    const token = await api("token", { method: "POST" });
    describe(token);
    keyField.textContent = token.token;
    keyField.hidden = false;
  }),
);

revokeButton.addEventListener("click", () =>
  act(async () => {
    await api("token", { method: "DELETE" });
    describeNone();
    statusLine.textContent = "Token revoked: scripts using it are refused from now on.";
  }),
);

load()
  .catch((error) => {
    statusLine.textContent = `Could not load your token: ${error.message}`;
  })
  .finally(() => {
    document.getElementById("account").dataset.ready = "";
  });
