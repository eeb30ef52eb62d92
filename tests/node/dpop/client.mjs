// An independent DPoP client for authgate's tests (issue 16 done-when 1): npm oauth4webapi
// (pinned in ../package.json) redeems an authorization code the test's headless browser got,
// with a DPoP proof, calls /mcp with the DPoP-bound token, refreshes with the same key and calls
// again. Every request's proof is made by oauth4webapi; a use_dpop_nonce answer is retried once
// with the nonce it carried (oauth4webapi keeps nonces per origin).
//
//   node client.mjs ISSUER CLIENT_ID REDIRECT_URI CALLBACK_URL CODE_VERIFIER STATE MCP_URL
//
// Prints one JSON line: what each step got.
import * as oauth from 'oauth4webapi'

const [issuerUrl, clientId, redirectUri, callbackUrl, codeVerifier, state, mcpUrl] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the test's authgate listens on http loopback
const issuer = new URL(issuerUrl)
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
)
const client = { client_id: clientId }
const clientAuth = oauth.None()
const keyPair = await oauth.generateKeyPair('ES256')
const DPoP = oauth.DPoP(client, keyPair)

async function retryingNonce(step) {
  try {
    return await step()
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) return await step() // RFC 9449 §8: once, with the nonce given
    throw err
  }
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'oauth4webapi', version: '3' } },
})

async function callMcp(accessToken) {
  const headers = new Headers({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-06-18',
  })
  const response = await retryingNonce(() =>
    oauth.protectedResourceRequest(accessToken, 'POST', new URL(mcpUrl), headers, INITIALIZE, { DPoP, ...insecure }),
  )
  return response.status
}

const params = oauth.validateAuthResponse(as, client, new URL(callbackUrl), state)
const tokens = await retryingNonce(async () =>
  oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, redirectUri, codeVerifier, {
      DPoP,
      ...insecure,
    }),
  ),
)
const firstCall = await callMcp(tokens.access_token)
const refreshed = await retryingNonce(async () =>
  oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, { DPoP, ...insecure }),
  ),
)
const secondCall = await callMcp(refreshed.access_token)
const jwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey) // the test computes its thumbprint
console.log(
  JSON.stringify({
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    first_call: firstCall,
    refreshed_token_type: refreshed.token_type,
    refreshed_access_token: refreshed.access_token,
    second_call: secondCall,
    jwk,
  }),
)
