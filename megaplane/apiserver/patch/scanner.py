"""Go's encoding/json scanner, for the exact SyntaxError text kube-apiserver answers a malformed body with.

`go_syntax_error(data)` runs encoding/json's scanner state machine (scanner.go) over a body and
returns the message Go reports for it, or None when Go accepts it. The apiserver puts that
text in its 400 Status and kubectl prints it, so orjson's own wording is never shown.
"""

from __future__ import annotations

from typing import List, Optional

from megaplane.apiserver.patch.limits import GO_MAX_NESTING_DEPTH

__all__ = ["go_syntax_error"]


def _quote_char(c: int) -> str:
    """encoding/json's quoteChar: how a syntax error shows the offending byte."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        body = "\\\\"
    elif 0x20 <= c < 0x7F or (c >= 0xA1 and c != 0xAD):
        body = chr(c)
    else:
        escapes = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
        body = escapes.get(c) or (f"\\x{c:02x}" if c < 0x80 else f"\\u{c:04x}")
    return f"'{body}'"


_SPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')
_LITERALS = {ord("t"): "true", ord("f"): "false", ord("n"): "null"}


def go_syntax_error(data: bytes, max_depth: int = GO_MAX_NESTING_DEPTH) -> Optional[str]:
    """The message of the SyntaxError Go's encoding/json reports for `data`, or None if Go accepts it.

    A transcription of encoding/json's scanner state machine (scanner.go): the apiserver answers a
    malformed body with exactly this text, and kubectl prints it. `max_depth` is the scanner's
    maxNestingDepth: a container opening a level beyond it is "invalid character '{' exceeded max depth".
    """
    stack: List[str] = []  # parse states: "key", "value" (inside an object), "array"
    state = "begin_value"
    literal = ""  # remaining letters of true/false/null
    word = ""
    hex_left = 0
    end_top = False

    def err(c: int, context: str) -> str:
        return f"invalid character {_quote_char(c)} {context}"

    def step(c: int) -> Optional[str]:
        nonlocal state, literal, word, hex_left, end_top
        while True:  # some states hand the byte on to the next one ("re-dispatch")
            if state == "end_top":
                return None if c in _SPACE else err(c, "after top-level value")
            if state == "begin_value_or_empty":
                if c in _SPACE:
                    return None
                if c == ord("]"):
                    state = "end_value"
                    continue
                state = "begin_value"
            if state == "begin_string_or_empty":
                if c in _SPACE:
                    return None
                if c == ord("}"):
                    stack[-1] = "value"
                    state = "end_value"
                    continue
                state = "begin_string"
            if state == "begin_value":
                if c in _SPACE:
                    return None
                if c == ord("{"):
                    stack.append("key")
                    state = "begin_string_or_empty"
                    if len(stack) > max_depth:
                        return err(c, "exceeded max depth")
                elif c == ord("["):
                    stack.append("array")
                    state = "begin_value_or_empty"
                    if len(stack) > max_depth:
                        return err(c, "exceeded max depth")
                elif c == ord('"'):
                    state = "in_string"
                elif c == ord("-"):
                    state = "neg"
                elif c == ord("0"):
                    state = "zero"
                elif ord("1") <= c <= ord("9"):
                    state = "one"
                elif c in _LITERALS:
                    word = _LITERALS[c]
                    literal = word[1:]
                    state = "literal"
                else:
                    return err(c, "looking for beginning of value")
                return None
            if state == "begin_string":
                if c in _SPACE:
                    return None
                if c == ord('"'):
                    state = "in_string"
                    return None
                return err(c, "looking for beginning of object key string")
            if state == "end_value":
                if not stack:
                    state = "end_top"
                    end_top = True
                    continue
                if c in _SPACE:
                    return None
                top = stack[-1]
                if top == "key":
                    if c == ord(":"):
                        stack[-1] = "value"
                        state = "begin_value"
                        return None
                    return err(c, "after object key")
                if top == "value":
                    if c == ord(","):
                        stack[-1] = "key"
                        state = "begin_string"
                        return None
                    if c == ord("}"):
                        stack.pop()
                        state = "end_value" if stack else "end_top"
                        end_top = not stack
                        return None
                    return err(c, "after object key:value pair")
                if c == ord(","):
                    state = "begin_value"
                    return None
                if c == ord("]"):
                    stack.pop()
                    state = "end_value" if stack else "end_top"
                    end_top = not stack
                    return None
                return err(c, "after array element")
            if state == "in_string":
                if c == ord('"'):
                    state = "end_value"
                elif c == ord("\\"):
                    state = "in_string_esc"
                elif c < 0x20:
                    return err(c, "in string literal")
                return None
            if state == "in_string_esc":
                if c in _ESCAPES:
                    state = "in_string"
                    return None
                if c == ord("u"):
                    state, hex_left = "in_string_esc_u", 4
                    return None
                return err(c, "in string escape code")
            if state == "in_string_esc_u":
                if c not in _HEX:
                    return err(c, "in \\u hexadecimal character escape")
                hex_left -= 1
                if hex_left == 0:
                    state = "in_string"
                return None
            if state == "neg":
                if c == ord("0"):
                    state = "zero"
                    return None
                if ord("1") <= c <= ord("9"):
                    state = "one"
                    return None
                return err(c, "in numeric literal")
            if state == "one":
                if c in _DIGITS:
                    return None
                state = "zero"
            if state == "zero":
                if c == ord("."):
                    state = "dot"
                    return None
                if c in (ord("e"), ord("E")):
                    state = "exp"
                    return None
                state = "end_value"
                continue
            if state == "dot":
                if c in _DIGITS:
                    state = "dot0"
                    return None
                return err(c, "after decimal point in numeric literal")
            if state == "dot0":
                if c in _DIGITS:
                    return None
                if c in (ord("e"), ord("E")):
                    state = "exp"
                    return None
                state = "end_value"
                continue
            if state == "exp":
                state = "exp_sign"
                if c in (ord("+"), ord("-")):
                    return None
            if state == "exp_sign":
                if c in _DIGITS:
                    state = "exp0"
                    return None
                return err(c, "in exponent of numeric literal")
            if state == "exp0":
                if c in _DIGITS:
                    return None
                state = "end_value"
                continue
            if state == "literal":
                if c != ord(literal[0]):
                    return err(c, f"in literal {word} (expecting {_quote_char(ord(literal[0]))})")
                literal = literal[1:]
                if not literal:
                    state = "end_value"
                return None
            raise AssertionError(state)

    for byte in data:
        problem = step(byte)
        if problem is not None:
            return problem
    if end_top:
        return None
    problem = step(ord(" "))  # what Go's scanner.eof does: a space ends a pending number
    if problem is not None:
        return problem
    return None if end_top else "unexpected end of JSON input"
