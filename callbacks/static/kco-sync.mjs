// kco-sync as an ES module: `import { connect, mountSnippet } from "/static/kco-sync.mjs";`
// The code is kco-sync.js (one file for both uses, no build step); importing it defines
// globalThis.KcoSync, which is re-exported here.
import "./kco-sync.js";

const KcoSync = globalThis.KcoSync;
export const { connect, mountSnippet, Sync, version } = KcoSync;
export default KcoSync;
