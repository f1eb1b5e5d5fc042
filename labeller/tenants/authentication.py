from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from labeller.tenants.tokens import api_token_is_expired


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing tokens past settings.API_TOKEN_LIFETIME.

    A request that presents a token and is refused gets 401 with ``WWW-Authenticate: Token``,
    so a script knows to fetch a new one. Without a token the header is left out, which keeps
    DRF's 403 for anonymous and session callers (DRF asks only the first authentication class).
    """

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if api_token_is_expired(token):
            raise AuthenticationFailed("Token has expired; ask for a new one (POST /api/v1/token).")
        return user, token

    def authenticate_header(self, request):
        presented = get_authorization_header(request).split()
        if presented and presented[0].lower() == self.keyword.lower().encode():
            return self.keyword
        return None
