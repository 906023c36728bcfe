// bridge.lsl - WebSocket clients for this object, through an lsl-websocket bridge (sl_bridge).
//
// Drop it into an object and edit the two settings below. The script asks
// for an HTTP-in URL, registers it with the bridge and says the public
// WebSocket URL to its owner. It registers again after on_rez, a region
// change or restart, and an owner change; sessions survive a
// re-registration within the bridge's grace period (60 s by default).
//
// Every client event comes as an http_request; on_client() below is where
// your code goes: return a reply for that client, or "" for none. To send
// at any other time, call push(session, text); push("*", text) sends to every
// client, push("!" + session, reason) closes one. Pushes are queued and sent
// several per llHTTPRequest, because Second Life throttles llHTTPRequest.
//
// Limits: 2048 bytes per message each way (a longer client message closes
// that client with 1009; a longer push is answered -2, WS_ERR_TOO_LARGE),
// 64 requests in flight per script (the bridge queues the rest and slows
// its clients down), at most 16 KiB per push request.

// ---------------------------------------------------------------- settings
string BRIDGE = "http://127.0.0.1:8790";  // the bridge's address: its /register is appended
string SECRET = "change-me";              // the bridge's SL_BRIDGE_SECRET
integer SECURE = FALSE;                   // TRUE: an https:// HTTP-in URL (the bridge then needs --grid-ca)
// ------------------------------------------------------------------------

string gUrl;          // this script's HTTP-in URL
string gToken;        // the bridge's name for this script (kept across on_rez and region changes)
string gPush;         // the bridge's push URL for this script
string gWs;           // the public WebSocket URL
key gUrlReq = NULL_KEY;
key gRegReq = NULL_KEY;
key gPushReq = NULL_KEY;
string gOut;          // push lines waiting for the next push request
string gSent;         // the lines of the push request in flight
integer gRegistered;

// Your code: one client event. kind is "open" (text: the path info),
// "text" (the message) or "close" (text: "<code> <reason>").
string on_client(key session, string kind, string text)
{
    if (kind != "text") return "";
    if (llGetSubString(text, 0, 5) == "!push ") {
        push((string)session, llDeleteSubString(text, 0, 5));   // later, by llHTTPRequest
        return "";
    }
    if (llGetSubString(text, 0, 4) == "!all ") {
        push("*", llDeleteSubString(text, 0, 4));               // to every client
        return "";
    }
    return text;   // echo: the reply goes back to the client that sent it
}

string replace(string s, string from, string to)
{
    return llDumpList2String(llParseStringKeepNulls(s, [from], []), to);
}

// The bridge reads %XX escapes; only %, CR and LF need them in a push line.
string escape(string s)
{
    // LSL has no "\r" escape: the CR is made with llUnescapeURL.
    return replace(replace(replace(s, "%", "%25"), "\n", "%0A"), llUnescapeURL("%0D"), "%0D");
}

push(string target, string text)
{
    gOut += target + " " + escape(text) + "\n";
    flush();
}

flush()
{
    if (gPushReq != NULL_KEY || gOut == "" || !gRegistered) return;
    key req = llHTTPRequest(gPush, [HTTP_METHOD, "POST", HTTP_MIMETYPE, "text/plain;charset=utf-8",
        HTTP_CUSTOM_HEADER, "X-Bridge-Secret", SECRET, HTTP_CUSTOM_HEADER, "X-Bridge-Token", gToken], gOut);
    if (req == NULL_KEY) {
        llSetTimerEvent(2.0);   // throttled: try again shortly
        return;
    }
    gPushReq = req;
    gSent = gOut;
    gOut = "";
}

request_url()
{
    if (gUrl != "") llReleaseURL(gUrl);
    gUrl = "";
    gRegistered = FALSE;
    if (SECURE) gUrlReq = llRequestSecureURL();
    else gUrlReq = llRequestURL();
}

register()
{
    string sig = llSHA256String(SECRET + "\n" + gUrl + "\n" + gToken);
    gRegReq = llHTTPRequest(BRIDGE + "/register?url=" + llEscapeURL(gUrl) + "&token=" + gToken + "&sig=" + sig,
        [HTTP_METHOD, "GET"], "");
    if (gRegReq == NULL_KEY) llSetTimerEvent(10.0);
}

default
{
    state_entry()
    {
        request_url();
    }

    on_rez(integer param)
    {
        request_url();
    }

    changed(integer change)
    {
        if (change & CHANGED_OWNER) gToken = "";   // a new owner gets new sessions
        if (change & (CHANGED_REGION | CHANGED_REGION_START | CHANGED_TELEPORT | CHANGED_OWNER)) request_url();
    }

    timer()
    {
        llSetTimerEvent(0.0);
        if (gUrl != "" && !gRegistered) register();
        flush();
    }

    http_request(key id, string method, string body)
    {
        if (id == gUrlReq) {
            gUrlReq = NULL_KEY;
            if (method == URL_REQUEST_GRANTED) {
                gUrl = body;
                register();
            } else {
                llOwnerSay("No HTTP-in URL: " + body);
            }
            return;
        }
        string kind = llGetHTTPHeader(id, "x-bridge-event");
        if (kind == "batch") {
            // Several client events: "<kind> <session> <escaped text>" per line;
            // the answer holds push lines for the replies.
            list lines = llParseString2List(body, ["\n"], []);
            integer n = llGetListLength(lines);
            integer i;
            string out = "";
            for (i = 0; i < n; i = i + 1) {   // not ++i: lummao's ++ needs CPython < 3.13
                list f = llParseStringKeepNulls(llList2String(lines, i), [" "], []);
                string session = llList2String(f, 1);
                string reply = on_client((key)session, llList2String(f, 0), llUnescapeURL(llList2String(f, 2)));
                if (reply != "") out += session + " " + escape(reply) + "\n";
            }
            llHTTPResponse(id, 200, out);
        } else if (kind != "") {
            llHTTPResponse(id, 200, on_client((key)llGetHTTPHeader(id, "x-bridge-session"), kind, body));
        } else {
            llHTTPResponse(id, 400, "this URL takes requests from the bridge only\n");
        }
    }

    http_response(key id, integer status, list meta, string body)
    {
        if (id == gRegReq) {
            gRegReq = NULL_KEY;
            if (status == 200) {
                list l = llParseString2List(body, ["\n"], []);
                string ws = llList2String(l, 2);
                gToken = llList2String(l, 0);
                gPush = llList2String(l, 1);
                gRegistered = TRUE;
                if (ws != gWs) llOwnerSay("WebSocket URL: " + ws + " " + llList2String(l, 3));
                gWs = ws;
                flush();
            } else {
                llOwnerSay("Bridge registration failed (" + (string)status + "): " + body);
                llSetTimerEvent(10.0);
            }
        } else if (id == gPushReq) {
            gPushReq = NULL_KEY;
            if (status == 404) {
                // The bridge no longer knows this script: register anew.
                gToken = "";
                gRegistered = FALSE;
                register();
            } else if (status != 200) {
                gOut = gSent + gOut;   // not applied: sent again shortly
                llSetTimerEvent(5.0);
                return;
            }
            // On 200 the body holds one status per line: 0 (sent) or a negative WS_ERR_* code.
            flush();
        }
    }
}
