/** `mxprobe schema`: the JSON Schema of profiles, for editor completion, hover help and checking. */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { profileJsonSchema } from '../profile/index.js';
import { CliError, EXIT } from './exit.js';

interface SchemaOptions {
  out?: string;
}

export function register(program: Command): void {
  program
    .command('schema')
    .summary('print the JSON Schema of profiles (editor completion and checking)')
    .description(
      'Print the JSON Schema of mxprobe profiles (draft-07) to stdout, or write it with --out. Editors that use ' +
        'it complete keys, show what each key means, and underline typos and wrong values while you edit a ' +
        'profile. (mxprobe itself checks every profile when it loads it; the schema is for editing.)',
    )
    .option('-o, --out <file>', 'write the schema to this file instead of stdout')
    .addHelpText(
      'after',
      `
Use it in VS Code (Red Hat "YAML" extension, redhat.vscode-yaml):
  mxprobe schema --out mxprobe.schema.json
  then make this the first line of a profile, with the schema's path relative to the profile
  (here: profiles/x.yaml and ./mxprobe.schema.json; an absolute path or a URL works too):
    # yaml-language-server: $schema=../mxprobe.schema.json
  or apply it to every profile in .vscode/settings.json:
    "yaml.schemas": { "./mxprobe.schema.json": "profiles/*.yaml" }
Other editors built on yaml-language-server (Neovim, Helix, Zed, Emacs lsp-mode) read the same comment.

Examples:
  mxprobe schema                          print it
  mxprobe schema --out mxprobe.schema.json
  mxprobe schema | jq '.properties | keys' list the profile's keys`,
    )
    .action(async (opts: SchemaOptions) => {
      const text = `${JSON.stringify(profileJsonSchema(), null, 2)}\n`;
      if (opts.out === undefined) {
        process.stdout.write(text);
        return;
      }
      try {
        await writeFile(opts.out, text);
      } catch (err) {
        throw new CliError(`cannot write ${opts.out}: ${(err as Error).message}`, EXIT.ENV);
      }
      process.stderr.write(
        `wrote the profile schema to ${opts.out}\n` +
          `editor hint: put "# yaml-language-server: $schema=<path to ${opts.out} from the profile>" on a profile's first line\n`,
      );
    });
}
