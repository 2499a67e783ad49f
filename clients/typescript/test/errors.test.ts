// ErrorReason, the generated enum of errors.proto, and how SkyError maps the
// reason the server sends (the value name without `ERROR_REASON_`) to it,
// without a server. The reasons of real server errors are checked in
// client.test.ts.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";

import {
  Code,
  ERROR_REASON_PREFIX,
  ErrorReason,
  SkyError,
  WaitTimeoutError,
  errorReasonName,
  parseErrorReason,
} from "../src/index.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";
import { ErrorReasonSchema, ErrorReason as GeneratedErrorReason } from "../src/gen/skypilot/v1/errors_pb.js";

function statusWithReason(reason: string) {
  const info = create(ErrorInfoSchema, { reason, domain: "skypilot.v1" });
  return create(StatusSchema, { code: Code.Internal, message: "m", details: [anyPack(ErrorInfoSchema, info)] });
}

describe("ErrorReason", () => {
  test("is the generated enum, exported from the package entry", () => {
    assert.equal(ErrorReason, GeneratedErrorReason);
    assert.equal(ErrorReason.NOT_FOUND, 2);
    assert.equal(ErrorReason.IDEMPOTENCY_KEY_REUSED, 7);
    assert.equal(ErrorReasonSchema.typeName, "skypilot.v1.ErrorReason");
  });

  test("every value but UNSPECIFIED round-trips through its wire name", () => {
    const values = ErrorReasonSchema.values.filter((v) => v.number !== ErrorReason.UNSPECIFIED);
    assert.equal(values.length, ErrorReasonSchema.values.length - 1);
    assert.ok(values.some((v) => v.number === ErrorReason.INTERNAL));
    for (const value of values) {
      const reason = value.number as ErrorReason;
      const name = errorReasonName(reason);
      // The wire name is the proto name without the prefix, which is also the
      // TypeScript member name protobuf-es generates.
      assert.equal(ERROR_REASON_PREFIX + name, value.name);
      assert.equal(name, value.localName);
      assert.equal(ErrorReason[reason], name);
      assert.equal(parseErrorReason(name), reason);
      // As the server sends it, in a failed operation's status, and back.
      const error = SkyError.fromStatus(statusWithReason(name), "operations/x");
      assert.equal(error.reason, name);
      assert.equal(error.errorReason, reason);
      const built = new SkyError("m", { code: Code.Internal, reason });
      assert.equal(built.reason, name);
      assert.equal(built.errorReason, reason);
    }
    assert.equal(parseErrorReason("NOT_FOUND"), ErrorReason.NOT_FOUND);
    assert.equal(parseErrorReason("STORAGE_FULL"), ErrorReason.STORAGE_FULL);
  });

  test("no reason is UNSPECIFIED, an unknown one INTERNAL", () => {
    assert.equal(errorReasonName(ErrorReason.UNSPECIFIED), "");
    assert.throws(() => errorReasonName(999 as ErrorReason), RangeError);
    assert.equal(parseErrorReason(""), ErrorReason.UNSPECIFIED);
    assert.equal(parseErrorReason(undefined), ErrorReason.UNSPECIFIED);
    // A newer server's reason, and spellings the server never sends (the
    // reverse mapping of the TS enum, "2", must not count either).
    for (const name of ["SOMETHING_NEW", "ERROR_REASON_NOT_FOUND", "not_found", "UNSPECIFIED", "2", "toString"]) {
      assert.equal(parseErrorReason(name), ErrorReason.INTERNAL, name);
    }
    const newer = SkyError.fromStatus(statusWithReason("SOMETHING_NEW"));
    assert.equal(newer.reason, "SOMETHING_NEW");
    assert.equal(newer.errorReason, ErrorReason.INTERNAL);
    const bare = new SkyError("no server", { code: Code.Unavailable });
    assert.equal(bare.reason, "");
    assert.equal(bare.errorReason, ErrorReason.UNSPECIFIED);
    assert.equal(new WaitTimeoutError("operations/x", 5).errorReason, ErrorReason.UNSPECIFIED);
  });
});
