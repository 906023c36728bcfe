// A Node `ws` echo server for bench/loopback.sh.
//
//   node ws_echo.js [port]
//
// Prints `listening <addr>` once bound (port 0 picks one). Every message is
// sent back on its connection. No permessage-deflate (ws's server default),
// no optional native add-ons (bufferutil, utf-8-validate): plain `ws`.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: false });
wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`listening ${a.address}:${a.port}\n`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
