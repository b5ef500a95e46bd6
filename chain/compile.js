// Compiles a solc standard-JSON input file with the pinned solc from npm and writes the output
// file: `node compile.js IN OUT`. (solcjs --standard-json loses output past 64 KiB on a pipe.)
const fs = require("fs");
const solc = require("solc");
const [input, output] = process.argv.slice(2);
fs.writeFileSync(output, solc.compile(fs.readFileSync(input, "utf8")));
