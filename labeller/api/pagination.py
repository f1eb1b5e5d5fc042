from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Stable pages over growing tables: rows added while paging are neither skipped nor repeated."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
