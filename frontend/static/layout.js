// Shared by every page: the logout button.
import { api } from "./api.js";

const logout = document.getElementById("logout");
if (logout) {
  logout.addEventListener("click", async () => {
    logout.disabled = true;
    try {
      await api("/api/v1/auth/logout", { method: "POST" });
    } catch {
      // Already logged out or offline: go to the login page either way.
    }
    window.location.assign("/login");
  });
}
