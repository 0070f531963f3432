import assert from "node:assert/strict";
import {
  WebhookError,
  type WebhookFailure,
  WebhookUnavailableError,
} from "../src/auth/webhook_error.ts";
import { OperatorUnavailableError } from "../src/server/operator_unavailable_error.ts";

Deno.test("a refusal is a WebhookError, which the hub counts", () => {
  const err = new WebhookError("refused", "banned");
  assert.equal(err.name, "WebhookError");
  assert.equal(err.reason, "refused");
  assert.equal(err.message, "banned");
  assert.ok(err instanceof Error);
  assert.ok(!(err instanceof OperatorUnavailableError));
});

Deno.test("an auth service that cannot answer is an OperatorUnavailableError with its reason", () => {
  const cause = new Error("connection refused");
  for (const reason of ["busy", "timeout", "unavailable", "bad_answer", "closed"] as const) {
    const err = new WebhookUnavailableError(reason, "auth service unavailable", { cause });
    assert.equal(err.name, "WebhookUnavailableError");
    assert.equal(err.reason, reason);
    assert.equal(err.message, "auth service unavailable");
    assert.equal(err.cause, cause);
    assert.ok(err instanceof OperatorUnavailableError);
    assert.ok(!(err instanceof WebhookError));
  }
});

Deno.test("either failure reads its reason the same way", () => {
  const failures: WebhookFailure[] = [
    new WebhookError("refused", "banned"),
    new WebhookUnavailableError("timeout", "auth service timed out"),
  ];
  assert.deepEqual(failures.map((f) => f.reason), ["refused", "timeout"]);
});
