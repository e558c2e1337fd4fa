#!/usr/bin/env bun
import { cac } from "cac";
import { VERSION } from "./version.ts";

export function buildCli() {
  const cli = cac("ddum");
  cli.help();
  cli.version(VERSION);
  return cli;
}

const cli = buildCli();
cli.parse(process.argv, { run: false });
if (!cli.matchedCommand && !cli.options.help && !cli.options.version) cli.outputHelp();
