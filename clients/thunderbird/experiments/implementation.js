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
 *   - protectDrafts: Thunderbird saves the message being written as a
 *     draft every few minutes, unencrypted, to the Drafts folder (on an
 *     IMAP server, the server's). No API turns that off for one window;
 *     this stops the window's autosave timer.
 *   - saveAttachment: a decrypted attachment is not one of Thunderbird's
 *     attachments (the messages API cannot save it), and a download link
 *     in the message pane is not followed by Thunderbird. This saves the
 *     bytes as Thunderbird saves an attachment: to the download folder or
 *     through a file dialog, as the user set it up.
 *   - closeCompose: after sendSealed the compose tab holds a message that
 *     was sent; tabs.remove would ask whether to save it as a draft (in
 *     plaintext, to the Drafts folder). This marks it unchanged first.
 *
 * Nothing here sees plaintext of a list post: sendSealed gets the sealed
 * message, which the native host made.
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
            onStopCopy(status) {
              if (sent) resolve({ copied: Components.isSuccessCode(status) });
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
          const result = await promise;
          if (message.replied && message.relatedMessageId !== undefined) {
            try {
              const hdr = context.extension.messageManager.get(message.relatedMessageId);
              hdr?.folder?.addMessageDispositionState(hdr, Ci.nsIMsgFolder.nsMsgDispositionState_Replied);
            } catch (e) {
              // Only a flag: the message went.
            }
          }
          return result;
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

        async protectDrafts(tabId) {
          const win = composeWindow(tabId);
          if (win.gAutoSaveTimeout) win.clearTimeout(win.gAutoSaveTimeout);
          win.gAutoSaveTimeout = null;
          win.gAutoSaveInterval = 0;
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
            await IOUtils.write(tmp, new Uint8Array(await file.arrayBuffer()), { mode: "create" });
            await IOUtils.setPermissions(tmp, 0o600);
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
          win.close();
        },
      },
    };
  }
};
