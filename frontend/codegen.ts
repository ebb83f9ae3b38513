import type { CodegenConfig } from "@graphql-codegen/cli";

// Types come from the server's schema files (graph/*.graphqls) and the
// documents written next to the components that use them.
const config: CodegenConfig = {
  schema: "../graph/*.graphqls",
  documents: ["src/**/*.{ts,tsx}", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: {
          ID: "string",
          Time: "string",
          Cursor: "string",
          Map: "Record<string, unknown>",
        },
      },
    },
  },
};

export default config;
