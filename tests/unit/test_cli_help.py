"""Every CLI argument explains itself: `--help` shows a help text for each option and positional."""

import argparse

from neuralcomp.cli import build_parser


def _arguments_without_help(parser: argparse.ArgumentParser, verbs: tuple[str, ...] = ()) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, subparser in action.choices.items():
                missing += _arguments_without_help(subparser, verbs + (verb,))
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            missing.append(" ".join(verbs + (action.option_strings[0] if action.option_strings else action.dest,)))
    return missing


def test_every_cli_argument_has_help_text():
    assert _arguments_without_help(build_parser()) == []
