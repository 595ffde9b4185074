"""Error answers of the simulated portal, with the statuses, codes and texts Bitrix24 uses."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: HTTP status plus the ``{"error", "error_description"}`` body."""

    def __init__(self, status: int, code: str | int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str | int]:
        """The JSON body, also used as a batch command's ``result_error`` entry."""
        return {"error": self.code, "error_description": self.description}


# System errors (string codes).


def no_auth() -> ApiError:
    """Wrong webhook user/code or access token."""
    return ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")


def method_not_found() -> ApiError:
    """The REST method does not exist."""
    return ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def query_limit_exceeded() -> ApiError:
    """The leaky bucket is above its threshold."""
    return ApiError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")


def operation_time_limit() -> ApiError:
    """The method's execution-time budget for this webhook or app is used up."""
    return ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")


def expired_token() -> ApiError:
    """An OAuth access token past its lifetime or replaced by a refresh (or a link bound to it)."""
    return ApiError(401, "expired_token", "The access token provided has expired")


def internal_server_error() -> ApiError:
    """An injected server fault."""
    return ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")


def batch_method_not_allowed() -> ApiError:
    """A batch command names a method that batch refuses (download, upload, batch).

    Per command in ``result_error``, or, for a batch refused as a whole, the HTTP answer.
    """
    return ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")


def batch_length_exceeded() -> ApiError:
    """A batch command beyond the 50th."""
    return ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")


def link_check_failed() -> ApiError:
    """A download token whose signature does not match the request's auth."""
    return ApiError(403, "ACCESS_DENIED", "Access denied! Link check failed")


def file_not_found() -> ApiError:
    """A correctly signed download link for a file that no longer exists.

    The reference does not say what such a link answers; a 404 in "the usual JSON error
    body" it gives for download errors is an INFERENCE.
    """
    return ApiError(404, "ERROR_NOT_FOUND", "File not found")


# Errors of the OAuth server's token endpoint (lower-case codes, as on oauth.bitrix.info).


def invalid_request(description: str) -> ApiError:
    """A token request with a missing parameter or another grant type."""
    return ApiError(400, "invalid_request", description)


def invalid_client() -> ApiError:
    """A token request with an unknown client_id or a wrong client_secret."""
    return ApiError(401, "invalid_client", "Invalid client credentials")


def invalid_grant() -> ApiError:
    """A refresh token that is unknown or already used (they rotate)."""
    return ApiError(400, "invalid_grant", "Invalid refresh token")


# Engine-controller errors of catalog.* methods: HTTP 400 with a numeric code.

ACCESS_DENIED_CODE = 200040300010
WRITE_DENIED_CODE = 200040300020


def catalog_access_denied() -> ApiError:
    """No right to read the trade catalog or this product."""
    return ApiError(400, ACCESS_DENIED_CODE, "Access Denied")


def catalog_write_denied() -> ApiError:
    """No right to modify the trade catalog or this product (productImage add/delete).

    The reference gives the code only; "Access Denied", the read refusal's text, is a guess.
    """
    return ApiError(400, WRITE_DENIED_CODE, "Access Denied")


def missing_parameter(name: str) -> ApiError:
    """A required action parameter is absent."""
    return ApiError(400, 100, f"Could not find value for parameter {{{name}}}")


def invalid_parameter(name: str, value: object, type_: str = "int") -> ApiError:
    """A parameter that cannot be bound to its type (int, or array for add's parameters)."""
    return ApiError(
        400,
        100,
        f"Invalid value {{{value}}} to match with parameter {{{name}}}. "
        f"Should be value of type {type_}.",
    )


def empty_product_id() -> ApiError:
    """productImage.list with productId ≤ 0."""
    return ApiError(400, 100, "Empty productID")


def catalog_error(description: str) -> ApiError:
    """Any other catalog failure: code 0."""
    return ApiError(400, 0, description)


def product_not_found() -> ApiError:
    """The product id is unknown."""
    return catalog_error("Product was not found")


def image_not_found() -> ApiError:
    """The image id is unknown or not attached to that product."""
    return catalog_error("Image does not exist")


def image_not_saved() -> ApiError:
    """An upload the portal cannot store: empty or undecodable content, not an image
    extension, a bad file name."""
    return catalog_error("Could not save image.")


def no_more_photo_property() -> ApiError:
    """A MORE_PHOTO add to a product without that property (the portal's text, sic)."""
    return catalog_error("Image product property does not exists. CreateMORE_PHOTO property")
