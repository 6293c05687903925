// The form post response mode: submit the authorization response to the client at once.
// The page's button does the same when scripts are off.
document.getElementById("response").submit();
