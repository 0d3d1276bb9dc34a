"""The admin API's JSON parser: DRF's, with a body nested too deeply for the decoder refused as a
parse error (400) instead of escaping as a RecursionError (500)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # the decoder's own guard, at the interpreter's recursion limit
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
