#!/usr/bin/python3
"""Lists the C++/CUDA sources of src/ and tests/ that are over the size limits: files
over MAX_FILE_LINES lines and functions (TEST bodies included) over MAX_FUNCTION_LINES.

    /usr/bin/python3 tools/check_sizes.py [--repo .] [--exclude GLOB ...]

Functions are found by brace matching after comments and literals are blanked, so a
macro that opens a brace it does not close can confuse it; it is a guide, not a parser.
Exit 0 when nothing is over, 1 otherwise.
"""
import argparse
import fnmatch
import os
import re
import sys

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
SUFFIXES = (".h", ".cpp", ".cu", ".cuh")
CONTAINER = re.compile(r'^(template\s*<.*>\s*)?(inline\s+)?(namespace|class|struct|union|enum)\b|^extern\s+"C"')


def blank_comments_and_literals(text):
    """Replaces comments, string and character literals by spaces, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            open_paren = text.find("(", i)
            delim = text[i + 2:open_paren]
            j = text.find(")" + delim + '"', open_paren)
            j = n if j < 0 else j + len(delim) + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator: 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_preprocessor(lines):
    """Blanks preprocessor directives, continuation lines included (macros may hold braces)."""
    in_directive = False
    for line in lines:
        if in_directive or line.lstrip().startswith("#"):
            in_directive = line.rstrip().endswith("\\")
            yield ""
        else:
            yield line


def long_functions(text):
    """Yields (first line, line count, header) of each function body over the limit."""
    code = blank_comments_and_literals(text)
    code = "\n".join(without_preprocessor(code.split("\n")))
    stack = []  # per open brace: (kind, start line, header)
    header_start = 0
    line = 1
    for i, c in enumerate(code):
        if c == "\n":
            line += 1
        elif c in "{};":
            if c == "{":
                header = " ".join(code[header_start:i].split())
                in_function = any(kind == "function" for kind, _, _ in stack)
                if in_function:
                    kind = "block"
                elif CONTAINER.search(header) and "(" not in header.split("{")[0].split(":")[0]:
                    kind = "container"
                elif "(" in header and not header.endswith("="):
                    kind = "function"
                else:
                    kind = "block"
                stack.append((kind, line, header))
            elif c == "}" and stack:
                kind, start, header = stack.pop()
                if kind == "function" and line - start + 1 > MAX_FUNCTION_LINES:
                    yield start, line - start + 1, header
            header_start = i + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--exclude", nargs="*", default=[], help="path globs relative to the repository")
    args = parser.parse_args()
    offenders = 0
    for top in ("src", "tests"):
        for root, _, files in os.walk(os.path.join(args.repo, top)):
            for name in sorted(files):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, args.repo)
                if any(fnmatch.fnmatch(rel, pattern) for pattern in args.exclude):
                    continue
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                lines = text.count("\n")
                if lines > MAX_FILE_LINES:
                    print(f"{rel}: {lines} lines (file limit {MAX_FILE_LINES})")
                    offenders += 1
                for start, count, header in long_functions(text):
                    print(f"{rel}:{start}: {count} lines (function limit {MAX_FUNCTION_LINES}): {header[-90:]}")
                    offenders += 1
    print(f"{offenders} over the limits")
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main())
