/**
 * Last-resort cleanup for resources a failed or interrupted test never released: the
 * registered synchronous actions run, newest first, when the test process exits however
 * it exits (normal end, uncaught error, SIGINT/SIGTERM/SIGHUP from the test runner).
 * Returns a function that unregisters the action once the resource was released normally.
 */
export function onProcessExit(action: () => void): () => void {
  installHandlers();
  actions.add(action);
  return () => {
    actions.delete(action);
  };
}

const actions = new Set<() => void>();
let installed = false;

function runAll(): void {
  for (const action of [...actions].reverse()) {
    actions.delete(action);
    try {
      action();
    } catch {
      // Best effort: one failing cleanup must not keep the others from running.
    }
  }
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on("exit", runAll);
  for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]] as const) {
    process.once(signal, () => {
      runAll();
      process.exit(128 + number);
    });
  }
}
