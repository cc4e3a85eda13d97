// Shared by every page: the logout button.
import { api } from "./api.js";

const logout = document.getElementById("logout");
if (logout) {
  logout.addEventListener("click", async () => {
    logout.disabled = true;
    let next = "/login";
    try {
      const answer = await api("/api/v1/auth/logout", { method: "POST" });
      // After single sign-on: end the session at the hospital's provider too, which sends
      // the browser back to the login page.
      if (answer && answer.logout_url) next = answer.logout_url;
    } catch {
      // Already logged out or offline: go to the login page either way.
    }
    window.location.assign(next);
  });
}
