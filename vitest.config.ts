import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["tests/setup/global-setup.ts"],
    include: ["tests/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files are independent (each makes its own users and orgs); two cores, two workers.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
