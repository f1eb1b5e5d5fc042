from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Stable pages over growing tables: rows added while paging are neither skipped nor repeated."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        """The cursor, checked before it reaches the query: a forged one is the client's error (400).

        DRF answers an undecodable cursor with 404 and passes any position through to the
        filter, where ``id > 'abc'`` fails inside the ORM as a 500.
        """
        message = "Invalid cursor: use the next or previous link of a page."
        invalid = ValidationError({self.cursor_query_param: [message]})
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        if cursor is not None and cursor.position is not None:
            try:
                position = int(cursor.position)
            except ValueError:
                raise invalid from None
            if not -(2**63) <= position < 2**63:  # beyond a 64-bit id, SQLite raises OverflowError
                raise invalid
        return cursor
