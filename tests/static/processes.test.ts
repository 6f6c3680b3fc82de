// waitFor, which npm start and the test stack use to wait for each process they start.
import { describe, expect, it } from "vitest";
import { GaveUp, waitFor } from "../../scripts/lib/processes.ts";

describe("waitFor", () => {
  it("stops waiting at once when the process it waits for has exited, naming why", async () => {
    let calls = 0;
    const check = async () => {
      calls++;
      throw new GaveUp("functions server exited with 1");
    };
    await expect(waitFor("functions server", check, 60_000)).rejects.toThrow("functions server did not come up: functions server exited with 1");
    expect(calls).toBe(1);
  });

  it("keeps trying through other errors until the check passes", async () => {
    let calls = 0;
    const check = async () => {
      if (++calls < 3) throw new Error("connection refused");
      return true;
    };
    await waitFor("gateway", check, 60_000);
    expect(calls).toBe(3);
  });
});
