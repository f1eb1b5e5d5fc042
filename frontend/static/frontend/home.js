import { api } from "./api.js";

const container = document.getElementById("projects");

async function render() {
  const me = await api("me");
  if (!me.organizations.length) {
    container.textContent = "You are not a member of any organisation yet.";
    return;
  }
  container.replaceChildren();
  for (const org of me.organizations) {
    const section = document.createElement("section");
    const heading = document.createElement("h2");
    heading.textContent = `${org.name} (${org.role})`;
    section.append(heading);
    if (org.role === "admin") {
      const members = document.createElement("a");
      members.href = `/o/${org.slug}/members/`;
      members.textContent = `Members of ${org.name}`;
      section.append(members);
    }
    const projects = await api(`orgs/${org.slug}/projects/`);
    const list = document.createElement("ul");
    for (const project of projects.results) {
      const item = document.createElement("li");
      item.dataset.projectId = project.id;
      const overview = document.createElement("a");
      overview.href = `/o/${org.slug}/p/${project.id}/`;
      overview.textContent = project.name;
      const label = document.createElement("a");
      label.href = `/o/${org.slug}/p/${project.id}/label/`;
      label.className = "button small";
      label.textContent = "Label";
      label.setAttribute("aria-label", `Label ${project.name}`);
      item.append(overview, " ", label);
      list.append(item);
    }
    section.append(list);
    container.append(section);
  }
}

render().catch((error) => {
  container.textContent = `Could not load your projects: ${error.message}`;
});
