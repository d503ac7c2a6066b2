// reaper.mjs - every child process a test helper starts (a broker, a
// redis-server) ends with this Node process, even when no exit handler runs.
//
// The helpers kill their children by PID in process.on('exit'). That handler
// does not run when the test runner kills the file at its timeout (SIGKILL),
// and the children would be orphaned, still running. So each test process
// has one watcher, started on first use: a detached `awk` reading lines on
// its stdin, a pipe from this process ("+ PID [DIR]" a child to kill, "- PID"
// one that is gone). However this process ends, the kernel closes its end of
// the pipe; the watcher reads EOF and SIGKILLs every PID still registered
// (SIGKILL: a child stopped with SIGSTOP ends too), then removes their
// directories. No polling: one process per test file, idle until then, for
// every child it starts. The pipe is close-on-exec, so no child keeps it open.
//
// On a normal exit the helpers' own handlers do the cleaning, and this
// module's handler kills the watcher (by PID) first, so that it never kills
// a PID that its child gave back to the system.
//
// Checked by hand: a script that starts a redis-server, a broker on it and
// one on the memory store, prints their PIDs and SIGKILLs itself: 0.1 s
// later all three were dead (`ps` state Z, waiting for init to reap them;
// `kill -0` still succeeds on a zombie) and the redis directory was gone.
import { spawn } from 'node:child_process';

// Registered PIDs are numbers and directories come from mkdtemp (checked
// below), so nothing read here reaches a shell unquoted.
const AWK = `
$1 == "+" && $2 ~ /^[0-9]+$/ { pid[$2] = 1; if (NF > 2) dir[$2] = substr($0, length($1 $2) + 3) }
$1 == "-" { delete pid[$2]; delete dir[$2] }
END {
    for (p in pid) system("kill -KILL " p " 2>/dev/null")
    for (p in dir) system("rm -rf -- '" dir[p] "'")
}`;

let watcher = null; // the awk process, or null before the first child (or if it could not start)

function start() {
    const w = spawn('awk', [AWK], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    w.on('error', () => {}); // no awk: the helpers' exit handlers still run when they can
    w.stdin.on('error', () => {}); // it died: nothing more to tell it
    w.on('exit', () => { if (watcher === w) watcher = null; });
    w.unref(); // neither it nor its pipe keeps this process alive
    w.stdin.unref?.();
    return w;
}

process.on('exit', () => {
    if (watcher?.pid) {
        try { process.kill(watcher.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
});

/**
 * Kill 'child' (a ChildProcess this process spawned) when this process ends
 * without killing it, e.g. SIGKILLed by the test runner; with 'dir', remove
 * that directory too (the child's data). Forgotten once the child exits.
 */
export function watchChild(child, { dir } = {}) {
    if (!child.pid) return; // never started: its 'error' says why
    if (dir !== undefined && !/^\/[^'\n]*$/.test(dir)) throw new Error(`watchChild: unexpected directory ${JSON.stringify(dir)}`);
    if (!watcher) watcher = start();
    const w = watcher;
    w.stdin.write(dir === undefined ? `+ ${child.pid}\n` : `+ ${child.pid} ${dir}\n`);
    child.on('exit', () => { if (watcher === w) w.stdin.write(`- ${child.pid}\n`); });
}
