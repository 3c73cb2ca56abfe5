/*
 * experiments/implementation.js - the one Experiment API of the add-on,
 * recryptSend, for the steps of sending a sealed list post that the
 * WebExtension API of Thunderbird cannot do:
 *
 *   - sendSealed: the compose API can only send what the composer builds
 *     (compose.sendMessage, and onBeforeSend may change header fields and
 *     the body, not the MIME structure). A sealed post is a complete
 *     message that the native host built; it must reach the identity's
 *     SMTP server byte for byte, and the copy in Sent must be that sealed
 *     message, not the plaintext. nsIMsgSend.sendMessageFile does exactly
 *     this (Thunderbird's own "send later" and calendar invitations use
 *     it): it sends a finished file through the identity's outgoing
 *     server and copies it to the identity's Fcc folder.
 *   - confirm: a background page cannot ask the user a question, and the
 *     reply-to-the-poster warning needs an explicit choice before anything
 *     goes. A dialog of the compose window, the default button being the
 *     one that sends nothing.
 *   - guardDrafts, setLists: Thunderbird saves the message being written
 *     as a draft, unencrypted, to the Drafts folder (on an IMAP server,
 *     the server's): every few minutes, on Save, and on Save when the
 *     window closes; all through the window's GenericSendMessage, and
 *     drafts fire no onBeforeSend. No API can stop that for one window;
 *     guardDrafts wraps GenericSendMessage of the window.
 *   - expandedRecipients: an address book list among the recipients is
 *     expanded only after onBeforeSend; this expands it as Thunderbird
 *     will, so that a list hidden in it is seen.
 *   - saveAttachment: a decrypted attachment is not one of Thunderbird's
 *     attachments (the messages API cannot save it), and a download link
 *     in the message pane is not followed by Thunderbird. This saves the
 *     bytes as Thunderbird saves an attachment: to the download folder or
 *     through a file dialog, as the user set it up.
 *   - closeCompose: after sendSealed the compose tab holds a message that
 *     was sent; tabs.remove would ask whether to save it as a draft (in
 *     plaintext, to the Drafts folder). This marks it unchanged first.
 *
 * Nothing here handles plaintext of a list post: sendSealed gets the
 * sealed message, which the native host made.
 */
"use strict";

/* global ExtensionAPI, ChromeUtils, Services, Cc, Ci, Components, IOUtils, PathUtils */

var recryptSend = class extends ExtensionAPI {
  getAPI(context) {
    const { ExtensionUtils } = ChromeUtils.importESModule("resource://gre/modules/ExtensionUtils.sys.mjs");
    const { ExtensionError } = ExtensionUtils;
    const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");

    function composeWindow(tabId) {
      let tab;
      try {
        tab = context.extension.tabManager.get(tabId);
      } catch (e) {
        throw new ExtensionError(`no compose tab ${tabId}`);
      }
      const win = tab && tab.nativeTab;
      if (!win || !win.gMsgCompose) throw new ExtensionError(`tab ${tabId} is not a compose tab`);
      return win;
    }

    /* SMTP wants CRLF line ends (sendMailMessage sends the file as it is). */
    function toCRLF(bytes) {
      let bare = 0;
      for (let i = 0; i < bytes.length; i++) if (bytes[i] === 10 && (i === 0 || bytes[i - 1] !== 13)) bare++;
      if (!bare) return bytes;
      const out = new Uint8Array(bytes.length + bare);
      for (let i = 0, j = 0; i < bytes.length; i++) {
        if (bytes[i] === 10 && (i === 0 || bytes[i - 1] !== 13)) out[j++] = 13;
        out[j++] = bytes[i];
      }
      return out;
    }

    /* The lists of setLists; the recipients of a window name one when its
     * address appears in them (more than a match is fine: it only skips a
     * draft). */
    let listAddresses = [];
    function namesList(win) {
      let fields;
      try {
        fields = win.GetComposeDetails();
      } catch (e) {
        return true; // cannot tell: guarded
      }
      const all = [fields.to, fields.cc, fields.bcc].join(",").toLowerCase();
      return listAddresses.some((a) => all.includes(a));
    }

    return {
      recryptSend: {
        async sendSealed(tabId, message) {
          const win = composeWindow(tabId);
          const identity = MailServices.accounts.getIdentity(message.identityId);
          if (!identity) throw new ExtensionError(`no identity ${message.identityId}`);
          if (!MailServices.outgoingServer.getServerByIdentity(identity))
            throw new ExtensionError(`the identity ${identity.email} has no outgoing server`);
          const bytes = toCRLF(new Uint8Array(await message.file.arrayBuffer()));
          const file = Services.dirsvc.get("TmpD", Ci.nsIFile);
          file.append("recrypt-sealed.eml");
          file.createUnique(Ci.nsIFile.NORMAL_FILE_TYPE, 0o600);
          await IOUtils.write(file.path, bytes);

          const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
          fields.from = message.from;
          fields.to = message.to.join(", ");
          fields.messageId = message.messageId;
          /* The composer's choice of Sent folder (the identity's, or one
           * picked in the compose window) for the sealed copy too. */
          const composing = win.gMsgCompose.compFields;
          if (composing.fcc) fields.fcc = composing.fcc;
          if (composing.fcc2) fields.fcc2 = composing.fcc2;

          const { promise, resolve, reject } = Promise.withResolvers();
          let sent = false;
          const listener = {
            QueryInterface: ChromeUtils.generateQI(["nsIMsgSendListener", "nsIMsgCopyServiceListener"]),
            onStartSending() {},
            onSendProgress() {},
            onStatus() {},
            onStopSending(msgId, status) {
              if (Components.isSuccessCode(status)) sent = true;
              else reject(new ExtensionError(`Thunderbird could not send the sealed message (error 0x${(status >>> 0).toString(16)}); nothing was sent`));
            },
            onTransportSecurityError() {},
            onSendNotPerformed(msgId, status) {
              reject(new ExtensionError(`Thunderbird did not send the sealed message (error 0x${(status >>> 0).toString(16)})`));
            },
            onGetDraftFolderURI() {},
            onStartCopy() {},
            onProgress() {},
            setMessageKey() {},
            getMessageId() {
              return message.messageId;
            },
            onStopCopy() {
              /* Thunderbird reports a failed copy to Sent itself; here only
               * whether the message went. */
              if (sent) resolve();
              else reject(new ExtensionError("Thunderbird did not send the sealed message"));
            },
          };
          const send = Cc["@mozilla.org/messengercompose/send;1"].createInstance(Ci.nsIMsgSend);
          try {
            await send.sendMessageFile(identity, null, fields, file, true, false,
              Ci.nsIMsgSend.nsMsgDeliverNow, null, listener, null);
          } catch (e) {
            IOUtils.remove(file.path).catch(() => {});
            throw new ExtensionError(`Thunderbird could not send the sealed message: ${e.message || e}`);
          }
          await promise;
          if (message.replied && message.relatedMessageId !== undefined) {
            try {
              const hdr = context.extension.messageManager.get(message.relatedMessageId);
              hdr?.folder?.addMessageDispositionState(hdr, Ci.nsIMsgFolder.nsMsgDispositionState_Replied);
            } catch (e) {
              // Only a flag: the message went.
            }
          }
        },

        async confirm(tabId, title, text, acceptLabel, cancelLabel) {
          const win = composeWindow(tabId);
          const p = Services.prompt;
          const flags = p.BUTTON_POS_0 * p.BUTTON_TITLE_IS_STRING +
            p.BUTTON_POS_1 * p.BUTTON_TITLE_IS_STRING + p.BUTTON_POS_1_DEFAULT;
          const r = await p.asyncConfirmEx(win.browsingContext, p.MODAL_TYPE_WINDOW, title, text, flags,
            acceptLabel, cancelLabel, null, null, false);
          return r.QueryInterface(Ci.nsIPropertyBag2).getPropertyAsInt32("buttonNumClicked") === 0;
        },

        async setLists(addresses) {
          listAddresses = addresses.map((a) => a.toLowerCase());
        },

        async guardDrafts(tabId, quotesPost) {
          const win = composeWindow(tabId);
          if (win.recryptDraftGuard) {
            win.recryptDraftGuard.quotesPost ||= quotesPost;
            return;
          }
          const guard = { quotesPost };
          win.recryptDraftGuard = guard;
          const send = win.GenericSendMessage;
          const M = Ci.nsIMsgCompDeliverMode;
          win.GenericSendMessage = async function (msgType) {
            const draft = [M.SaveAsDraft, M.AutoSaveAsDraft, M.SaveAsTemplate].includes(msgType);
            if (!draft || !(guard.quotesPost || namesList(win))) return send.call(this, msgType);
            if (msgType === M.AutoSaveAsDraft && !win.gCloseWindowAfterSave) return undefined; // skipped
            const p = Services.prompt;
            const flags = p.BUTTON_POS_0 * p.BUTTON_TITLE_IS_STRING +
              p.BUTTON_POS_1 * p.BUTTON_TITLE_IS_STRING + p.BUTTON_POS_1_DEFAULT;
            const r = await p.asyncConfirmEx(win.browsingContext, p.MODAL_TYPE_WINDOW,
              "recrypt: save unencrypted?",
              "This message goes to an encrypted list or quotes one of its posts. Thunderbird " +
              "stores drafts and templates unencrypted, in your Drafts folder (for an IMAP " +
              "account, on the mail server).", flags, "Save unencrypted", "Don't save",
              null, null, false);
            if (r.QueryInterface(Ci.nsIPropertyBag2).getPropertyAsInt32("buttonNumClicked") === 0)
              return send.call(this, msgType);
            win.gCloseWindowAfterSave = false;
            return undefined;
          };
        },

        async expandedRecipients(tabId) {
          const win = composeWindow(tabId);
          const fields = win.GetComposeDetails(); // the recipients as they are in the window
          win.gMsgCompose.expandMailingLists();
          return { to: fields.to || "", cc: fields.cc || "", bcc: fields.bcc || "" };
        },

        async saveAttachment(file, name) {
          const { DownloadPaths } = ChromeUtils.importESModule("resource://gre/modules/DownloadPaths.sys.mjs");
          const { Downloads } = ChromeUtils.importESModule("resource://gre/modules/Downloads.sys.mjs");
          const safe = DownloadPaths.sanitize(name) || "attachment";
          let target;
          if (Services.prefs.getBoolPref("browser.download.useDownloadDir", false)) {
            const f = Cc["@mozilla.org/file/local;1"].createInstance(Ci.nsIFile);
            f.initWithPath(await Downloads.getPreferredDownloadsDirectory());
            f.append(safe);
            target = DownloadPaths.createNiceUniqueFile(f); // created, empty, not yet written
          } else {
            const win = Services.wm.getMostRecentWindow("mail:3pane");
            const fp = Cc["@mozilla.org/filepicker;1"].createInstance(Ci.nsIFilePicker);
            fp.init(win.browsingContext, "Save attachment", Ci.nsIFilePicker.modeSave);
            fp.defaultString = safe;
            const rv = await new Promise((resolve) => fp.open(resolve));
            if (rv === Ci.nsIFilePicker.returnCancel || !fp.file) return null;
            target = fp.file;
          }
          /* Decrypted content: readable by the user alone, whatever the umask. */
          const tmp = target.path + ".part";
          try {
            await IOUtils.write(tmp, new Uint8Array(0), { mode: "create" });
            await IOUtils.setPermissions(tmp, 0o600); // before a byte is in it
            await IOUtils.write(tmp, new Uint8Array(await file.arrayBuffer()), { mode: "append" });
            await IOUtils.move(tmp, target.path);
          } catch (e) {
            IOUtils.remove(tmp).catch(() => {});
            throw new ExtensionError(`could not save ${safe}: ${e.message || e}`);
          }
          return target.path;
        },

        async closeCompose(tabId) {
          const win = composeWindow(tabId);
          if (typeof win.SetContentAndBodyAsUnmodified === "function") win.SetContentAndBodyAsUnmodified();
          win.gMsgCompose.bodyModified = false;
          win.gContentChanged = false;
          if (win.gMsgCompose.compFields.draftId && typeof win.RemoveDraft === "function") {
            try {
              win.RemoveDraft();
            } catch (e) {
              // The draft may be gone already.
            }
          }
          win.close();
        },
      },
    };
  }
};
