"""`tuichat login`: ask the server how to log in, then do it in the terminal.

The server's offer decides the method (the OAuth 2.0 API, else single
sign-on, else password; `--method` overrides). Single sign-on and the OAuth
2.0 API's authorization code grant open the browser (or print the address)
and wait for the loopback redirect or a pasted address, whichever comes
first; without a browser here (SSH, `--no-browser`) the OAuth 2.0 API uses
the device authorization grant: an address, a code and a QR code to scan.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

from tuichat.browser import can_open_browser, open_browser, open_in_browser
from tuichat.matrix.account import oauth, oauth_grants, oauth_login
from tuichat.matrix.account.login import (
    LoginError,
    check_homeserver,
    login,
    login_with_token,
    parse_user,
    resolve_homeserver,
    reusable_device_id,
)
from tuichat.matrix.account.login_methods import (
    IdentityProvider,
    LoginMethods,
    Method,
    choose_method,
    fetch_login_methods,
)
from tuichat.matrix.account.oauth_client_registration import ClientRegistration
from tuichat.matrix.account.oauth_uia import BrowserApproval, PasswordAuth
from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.account.sso import (
    LoopbackCallback,
    sso_redirect_url,
    stdin_lines,
    wait_for_login_token,
)
from tuichat.model.sanitize import SafeText, clean_line, safe_line, safe_text, trusted

log = logging.getLogger(__name__)

# How long single sign-on may take in the browser before tuichat gives up.
SSO_TIMEOUT_S = 600.0


def _say(text: SafeText) -> None:
    print(text, flush=True)


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
    if not password:
        raise LoginError("no password given")
    return password


def choose_identity_provider(
    providers: tuple[IdentityProvider, ...], wanted: str | None, interactive: bool
) -> IdentityProvider | None:
    """`--idp ID`, the only provider, or one picked from a numbered list on
    a terminal; None lets the homeserver show its own choice page."""
    if wanted is not None:
        for provider in providers:
            if provider.id == wanted:
                return provider
        listed = ", ".join(f"{clean_line(p.id)} ({p.name})" for p in providers)
        raise LoginError(
            f"this server has no identity provider {clean_line(wanted)!r}; "
            + (f"it offers {listed}" if listed else "it lists none")
        )
    if len(providers) == 1:
        return providers[0]
    if len(providers) < 2 or not interactive:
        return None
    _say(trusted("Sign in with:"))
    for number, provider in enumerate(providers, 1):
        _say(safe_line(f"  {number}. {provider.name} ({provider.id})"))
    while True:
        answer = input(f"Number (1-{len(providers)}): ").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(providers):
            return providers[int(answer) - 1]
        _say(safe_line(f"Type a number from 1 to {len(providers)}."))


async def sso_login(
    profile: Profile,
    base_url: str,
    methods: LoginMethods,
    args: argparse.Namespace,
    user_id: str | None,
) -> Session:
    """Single sign-on: browser (or printed address), then `m.login.token`."""
    device_id = await reusable_device_id(profile, user_id)
    interactive = sys.stdin.isatty()
    provider = choose_identity_provider(methods.identity_providers, args.idp, interactive)
    callback = LoopbackCallback()
    await callback.start()
    try:
        url = sso_redirect_url(base_url, callback.url, provider.id if provider else None)
        log.info("single sign-on on %s, identity provider %r", base_url, provider and provider.id)
        via = f" with {provider.name}" if provider else ""
        opened = not args.no_browser and can_open_browser() and await open_browser(url)
        if opened:
            _say(safe_line(f"Opened your browser to sign in{via}. If it did not open, go to:"))
        else:
            _say(safe_line(f"To sign in{via}, open this address in a browser:"))
        _say(safe_text(f"\n    {url}\n"))
        _say(
            trusted(
                "If the browser runs on another machine (SSH), it ends on an address "
                "starting with http://127.0.0.1 that cannot load: copy that address "
                "from the address bar and paste it here, then press Enter."
            )
        )

        def bad_paste(line: str) -> None:
            _say(
                trusted("That holds no login token; paste the whole address the browser ended on.")
            )

        token = await asyncio.wait_for(
            wait_for_login_token(callback, stdin_lines(), bad_paste), SSO_TIMEOUT_S
        )
    except TimeoutError:
        raise LoginError(
            f"no sign-in within {SSO_TIMEOUT_S / 60:.0f} minutes; run tuichat login again"
        ) from None
    finally:
        await callback.close()
    _say(trusted("Signed in in the browser; logging in…"))
    return await login_with_token(
        profile,
        base_url,
        token,
        device_id=device_id,
        device_name=args.device_name,
        user_id=user_id,
    )


def _device_grant_wanted(args: argparse.Namespace, server: oauth.AuthServer) -> bool:
    """The device authorization grant when asked for, or when no browser
    can be opened here (SSH, --no-browser) and the server offers it."""
    grant = getattr(args, "grant", None)
    if grant == "device":
        return True
    if grant == "code":
        return False
    return server.offers_device_grant and (args.no_browser or not can_open_browser())


def _countdown(seconds_left: float) -> None:
    minutes, seconds = divmod(int(seconds_left), 60)
    if sys.stdout.isatty():
        print(trusted("\r"), end="")
        print(safe_line(f"Waiting for approval… {minutes}:{seconds:02d} left "), end="", flush=True)


def device_login_parts(
    authorization: oauth_grants.DeviceAuthorization,
) -> tuple[list[SafeText], list[SafeText], list[SafeText]]:
    """What the device login shows: the lines before the QR code (the
    address, the code), the QR code's rows (of the complete address, none
    if the server gave none), and the lines after it."""
    from tuichat.qr_text import qr_lines

    before = [
        trusted("To log in, open this address on any device (a phone works):"),
        safe_text(f"\n    {authorization.verification_uri}\n"),
        safe_line(f"and enter the code:  {authorization.user_code}"),
    ]
    rows: list[SafeText] = []
    after: list[SafeText] = []
    if authorization.verification_uri_complete:
        before.append(trusted("\nOr scan this QR code, which holds the address with the code:\n"))
        # safe_text: the rows' spaces (the quiet zone) are kept as they are.
        rows = [safe_text(row) for row in qr_lines(authorization.verification_uri_complete)]
        after.append(safe_text(f"\n    ({authorization.verification_uri_complete})\n"))
    after.append(safe_line(f"The code is valid for {authorization.expires_in_s / 60:.0f} minutes."))
    return before, rows, after


def print_device_login(authorization: oauth_grants.DeviceAuthorization, *, colour: bool) -> None:
    """Print `device_login_parts`; with `colour` the QR code is drawn black
    on white (SGR 256 colours), as a dark terminal would invert it and many
    scanners cannot read an inverted code."""
    before, rows, after = device_login_parts(authorization)
    for line in before:
        print(line)
    for row in rows:
        print(trusted("    "), end="")
        if colour:
            print(trusted("\x1b[38;5;16;48;5;231m"), end="")
        print(row, end="")
        print(trusted("\x1b[0m") if colour else trusted(""))
    for line in after:
        print(line)
    sys.stdout.flush()


async def oauth_device_login(
    server: oauth.AuthServer, client: ClientRegistration, device_id: str
) -> oauth_grants.Tokens:
    """The device authorization grant (RFC 8628): the address, the code and
    a QR code of the complete address; then wait for the approval."""
    authorization = await oauth_grants.start_device_authorization(server, client, device_id)
    log.info("device login at %s", server.issuer)
    print_device_login(authorization, colour=sys.stdout.isatty())
    try:
        return await oauth_grants.poll_device_token(
            server, client, authorization, on_tick=_countdown
        )
    finally:
        if sys.stdout.isatty():
            print(flush=True)


async def oauth_code_login(
    server: oauth.AuthServer,
    client: ClientRegistration,
    device_id: str,
    args: argparse.Namespace,
) -> oauth_grants.Tokens:
    """Authorization code with PKCE: the browser (or a printed address),
    the loopback redirect or a pasted address, then the token request."""
    from tuichat.matrix.account.sso import stdin_lines, wait_for_login_token

    callback = oauth_grants.OAuthCallback(oauth_grants.new_state())
    await callback.start()
    try:
        request = oauth_grants.authorization_request(
            server, client, callback.url, device_id, callback.state
        )
        opened = not args.no_browser and can_open_browser() and await open_browser(request.url)
        if opened:
            _say(trusted("Opened your browser to sign in. If it did not open, go to:"))
        else:
            _say(trusted("To sign in, open this address in a browser:"))
        _say(safe_text(f"\n    {request.url}\n"))
        _say(
            trusted(
                "If the browser runs on another machine (SSH), it ends on an address "
                "starting with http://127.0.0.1 that cannot load: copy that address "
                "from the address bar and paste it here, then press Enter "
                "(or use --grant device)."
            )
        )

        def bad_paste(line: str) -> None:
            _say(trusted("That holds no code for this login; paste the whole address."))

        code = await asyncio.wait_for(
            wait_for_login_token(
                callback,
                stdin_lines(),
                bad_paste,
                parse=lambda line: oauth_grants.code_from_redirect(line, request.state),
                what="OAuth 2.0 authorization code",
            ),
            SSO_TIMEOUT_S,
        )
    except TimeoutError:
        raise LoginError(
            f"no sign-in within {SSO_TIMEOUT_S / 60:.0f} minutes; run tuichat login again"
        ) from None
    finally:
        await callback.close()
    _say(trusted("Signed in in the browser; logging in…"))
    return await oauth_grants.exchange_code(server, client, request, code)


async def run_oauth_login(
    profile: Profile, base_url: str, args: argparse.Namespace, user_id: str | None
) -> Session:
    """The OAuth 2.0 API: discovery, registration, one of the two grants,
    then the session."""
    server, client, device_id = await oauth_login.prepare(profile, base_url, user_id)
    if _device_grant_wanted(args, server):
        tokens = await oauth_device_login(server, client, device_id)
    else:
        tokens = await oauth_code_login(server, client, device_id, args)
    return await oauth_login.complete(profile, base_url, server, client, tokens, device_id, user_id)


async def run_login(args: argparse.Namespace, profile: Profile) -> Session:
    name = parse_user(args.user) if args.user else None
    base_url = await resolve_homeserver(args.homeserver, name)
    await check_homeserver(base_url)
    methods = await fetch_login_methods(base_url)
    method: Method = choose_method(methods, args.method)
    if method == "oauth":
        return await run_oauth_login(profile, base_url, args, name.user_id if name else None)
    if method == "sso":
        return await sso_login(profile, base_url, methods, args, name.user_id if name else None)
    if name is None:
        raise LoginError("password login needs --user")
    # Refused before the password is asked when the profile is in use.
    await reusable_device_id(profile, name.user_id)
    password = read_password(args.password_stdin)
    return await login(
        profile,
        homeserver=base_url,
        user=args.user,
        password=password,
        device_name=args.device_name,
    )


def login_command(args: argparse.Namespace, profile_dir: Path) -> int:
    """The `login` command; 0 on success, 1 with a one-line reason."""
    from tuichat.matrix.account.session import ProfileError

    try:
        session = asyncio.run(run_login(args, Profile(profile_dir)))
    except (LoginError, ProfileError) as error:
        print(safe_line(f"tuichat: {error}"), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("tuichat: interrupted", file=sys.stderr)
        return 1
    print(
        safe_line(
            f"Logged in as {session.user_id} on {session.homeserver} (device {session.device_id})"
        )
    )
    return 0


async def account_url(profile: Profile, action: str | None) -> str:
    """The account management URL (MSC4191) of the profile's server."""
    session = profile.load_session(tokens=False)
    if session is None:
        raise LoginError(f"{profile.root} holds no session; run tuichat login first")
    from tuichat.matrix.service.account_page import account_url as page_url
    from tuichat.matrix.service.outcome import Failed

    url = await page_url(session, action)
    if isinstance(url, Failed):
        raise LoginError(url.message)
    if url is None:
        raise LoginError(
            f"{session.homeserver} does not use the OAuth 2.0 API and publishes no account page"
        )
    return url


def account_command(args: argparse.Namespace, profile_dir: Path) -> int:
    """`tuichat account [ACTION]`: open (or print) the account page."""
    from tuichat.matrix.account.session import ProfileError

    try:
        url = asyncio.run(account_url(Profile(profile_dir), args.action))
    except (LoginError, ProfileError) as error:
        print(safe_line("tuichat: " + str(error)), file=sys.stderr)
        return 1
    if not args.no_browser and can_open_browser() and open_in_browser(url):
        _say(trusted("Opened your account page:"))
    else:
        _say(trusted("Your account page:"))
    _say(safe_line(url))
    return 0


def terminal_approval(password: PasswordAuth | None = None) -> BrowserApproval:
    """An `authenticate` for cross-signing uploads from the command line:
    on OAuth 2.0 API servers it says why, opens (or prints) the approval
    page and waits for Enter; `password` answers a password stage."""

    async def approve(url: str) -> None:
        _say(
            trusted(
                "Your server asks you to approve resetting your cross-signing keys in "
                "the browser (it has no password to ask for)."
            )
        )
        if can_open_browser() and await open_browser(url):
            _say(trusted("Opened the page to approve it in your browser:"))
        else:
            _say(trusted("Open this address and approve it:"))
        _say(safe_text(f"\n    {url}\n"))
        await asyncio.get_running_loop().run_in_executor(
            None, input, "Press Enter once you have approved it. "
        )

    return BrowserApproval(approve, password)
