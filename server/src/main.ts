/** The language server process: `node dist/server.js --stdio` (or --node-ipc, as VS Code starts it). */
import { join } from 'node:path';
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { startServer } from './server';

startServer(createConnection(ProposedFeatures.all), { workerPath: join(__dirname, 'worker.js') });
