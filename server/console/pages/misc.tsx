/** The sign-in page and the error page. */
import { href, type Html, Page, type View } from "../view.tsx";

/** Asks for the server's token once; the browser then keeps a session cookie. */
export function SignInPage(props: { view: View; next: string; error?: string }): Html {
  const { view } = props;
  return (
    <Page view={view} title="Sign in" section="sign-in">
      <div class="narrow card">
        <h1>Sign in</h1>
        {!view.hasToken
          ? <p>This server has no token: there is nothing to sign in to.</p>
          : view.signedIn
          ? (
            <p>
              You are signed in. <a href={props.next}>Continue</a>
            </p>
          )
          : (
            <form method="post" action={href(view, "/sign-in")}>
              <p class="small muted">
                Enter the token this server was started with (<code>--token</code> or{" "}
                <code>SEEDTASK_TOKEN</code>). It is checked once; this browser then keeps a session
                cookie for this console only.
              </p>
              {props.error && <div class="notice notice-bad" role="alert">{props.error}</div>}
              <label class="field" for="token">Token</label>
              <input
                type="password"
                id="token"
                name="token"
                autocomplete="current-password"
                required
                autofocus
              />
              <input type="hidden" name="next" value={props.next} />
              <button class="btn btn-primary" type="submit">Sign in</button>
            </form>
          )}
      </div>
    </Page>
  );
}

/** A page for a refused or failed request: the status and one line. */
export function ErrorPage(props: { view: View; status: number; message: string }): Html {
  const { view } = props;
  const titles: Record<number, string> = {
    400: "Invalid request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Ambiguous",
    503: "Unavailable",
  };
  const title = titles[props.status] ?? "Error";
  return (
    <Page view={view} title={title} section="error">
      <h1>{title}</h1>
      <div class="notice notice-bad" role="alert">{props.message}</div>
      <p>
        <a href={href(view, "/")}>Overview</a> · <a href={href(view, "/tasks")}>Tasks</a>
      </p>
    </Page>
  );
}
