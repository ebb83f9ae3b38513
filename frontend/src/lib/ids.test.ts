import { describe, expect, it } from "vitest";
import { idNumber, nodeId } from "./ids";

describe("ids", () => {
  it("reads the number out of a GraphQL id", () => {
    expect(idNumber("VGFzazoz")).toBe("3"); // Task:3
    expect(idNumber(nodeId("Model", "8589934593"))).toBe("8589934593");
  });
  it("leaves anything else as it is", () => {
    expect(idNumber("42")).toBe("42");
    expect(idNumber("not an id")).toBe("not an id");
    expect(idNumber(btoa("hello"))).toBe(btoa("hello"));
  });
  it("builds the id the server sends", () => {
    expect(nodeId("Task", "1")).toBe("VGFzazox");
  });
});
