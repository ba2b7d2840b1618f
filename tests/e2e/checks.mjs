// The browser tests' reporting: one "PASS name" or "FAIL name (detail)" line per check, then
// "N passed, N failed"; the process fails when any check failed or none ran. Shared by
// signin.mjs and viewer.mjs.

const tally = { passed: 0, failed: 0 };

/** Records one check and prints its line; returns `ok`. */
export function check(name, ok, detail = '') {
  if (ok) {
    tally.passed++;
    console.log(`PASS ${name}`);
  } else {
    tally.failed++;
    console.log(`FAIL ${name}${detail ? ` (${detail})` : ''}`);
  }
  return ok;
}

/** A check that `got` is `want`, showing both when it is not. */
export function eq(name, got, want) {
  return check(name, got === want, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** Whether a check has failed so far. */
export const anyFailed = () => tally.failed > 0;

/** Prints the totals and sets the exit status. */
export function finish() {
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exitCode = tally.failed || !tally.passed ? 1 : 0;
}

/** Fails the run, after `cleanup`, if it is still going after `ms` (a page or request hung). */
export function deadline(ms, cleanup = () => {}) {
  const timer = setTimeout(() => {
    check('the test finished in time', false, `not within ${ms / 1000} s: a page or request hung; read the logs`);
    cleanup();
    finish();
    process.exit(1);
  }, ms);
  timer.unref();
}
