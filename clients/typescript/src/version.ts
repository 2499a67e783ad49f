// The API version this client speaks, in a module of its own with no Node.js
// imports, so that the browser dashboard (dashboard/) can share it.

/** The API version this client speaks (`x-skypilot-api-version`). */
export const API_VERSION = 1;
/** The header every call carries with `API_VERSION`. */
export const API_VERSION_HEADER = "x-skypilot-api-version";
