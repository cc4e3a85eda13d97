// Passkeys and security keys (WebAuthn) with the browser's own JSON helpers.
import { api } from "./api.js";

export function passkeysSupported() {
  return Boolean(
    window.PublicKeyCredential &&
      PublicKeyCredential.parseRequestOptionsFromJSON &&
      PublicKeyCredential.parseCreationOptionsFromJSON,
  );
}

/** Asks the authenticator to sign the server's challenge; returns the assertion as JSON. */
export async function assertPasskey() {
  const options = await api("/api/v1/auth/second-factor/webauthn-options", { method: "POST" });
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
  });
  return credential.toJSON();
}

/** Creates a new passkey for the signed-in account; returns the attestation as JSON. */
export async function createPasskey() {
  const options = await api("/api/v1/account/second-factors/webauthn-options", { method: "POST" });
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
  });
  return credential.toJSON();
}
