// What the call page says, in English and Traditional Chinese (Taiwan), and Said: a message
// of the page kept by key, so that it reads in the language in use whenever it is shown.
//
//   setText(node, String(said('call.joining', { room })));
//
// A var of a Said may itself be a Said (an error the page made) or a plain string (a reason
// the server gave, shown as it came).

import { register, t } from './i18n.js';

export const CALL_STRINGS = {
  en: {
    'call.title': 'Call',
    'call.title.room': 'Call · {room}',
    'call.rec': '● REC',
    'call.rec.title': 'What is published in this call is recorded',
    'call.controls': 'Call controls',
    'call.mic.mute': 'Mute mic',
    'call.mic.unmute': 'Unmute mic',
    'call.camera.stop': 'Stop camera',
    'call.camera.start': 'Start camera',
    'call.screen.share': 'Share screen',
    'call.screen.stop': 'Stop sharing',
    'call.fields': 'Field cameras',
    'call.fields.empty': 'No field camera this token may view is live.',
    'call.fields.pin': 'Pin {name}',
    'call.fields.unpin': 'Unpin {name}',
    'call.sound.enable': 'Click to enable sound',
    'call.leave': 'Leave',
    'call.join.heading': 'Join a call',
    'call.join.room': 'Room',
    'call.join.name': 'Your name, as the others see it (optional)',
    'call.join.token': 'Access token',
    'call.join.keep-token': 'keep the token given before',
    'call.join.submit': 'Join',
    'call.join.again': 'Join again',
    'call.join.need-room': 'Enter the room to join.',
    'call.join.need-both': 'This page needs an access token and a room to join a call.',
    'call.join.bad-room': 'Enter the room: 1 to 64 letters, digits, ".", "_" or "-".',
    'call.join.need-token': 'Paste the access token you were given.',
    'call.join.unreachable': 'Cannot reach the call server: {reason}',
    'call.join.refused': 'The server refused to join: {reason}',
    'call.joining': 'Joining {room}…',
    'call.watch-only': 'Your token lets you watch and listen only.',
    'call.count': '{n} in the call',
    'call.left': 'You left the call.',
    'call.ended': 'The call ended: {reason}',
    'call.lost': 'Connection lost ({reason}); reconnecting…',
    'call.rejoining': 'The server no longer had this call open; joining again…',
    'call.reconnecting': 'Reconnecting… ({reason})',
    'call.request-refused': 'The server refused a request: {reason}',
    'call.receive-failed': 'Receiving the others failed: {reason}',
    'call.send-failed': 'Your camera and microphone could not be sent: {reason}',
    'call.screen.failed': 'Screen sharing did not start: {reason}',
    'call.screen.send-failed': 'Your screen could not be sent: {reason}',
    'call.stage.badge': 'field camera',
    'call.stage.sound-on': 'Sound on',
    'call.stage.sound-off': 'Sound off',
    'call.stage.unpin': 'Unpin',
    'call.stage.cannot-show': 'This camera cannot be shown: {reason}',
    'call.stage.no-sound': 'No sound: {reason}',
    'call.stage.went-away': 'The field camera went away: {reason}.',
    'call.stage.stopped': 'it stopped',
    'call.stage.ended': 'The field camera ended: {reason}.',
    'call.stage.offline': 'This field camera is offline.',
    'call.stage.paused': 'Video paused: the network is too slow.',
    'call.stage.connecting': 'Connecting…',
    'call.tile.you': '{name} (you)',
    'call.tile.screen': '{name} — screen',
    'call.tile.mic-off': 'mic off',
    'call.tile.camera-off': 'camera off',
    'call.tile.screen-starting': 'screen share starting…',
    'call.tile.no-camera': 'no camera',
    'call.tile.paused': 'video paused to keep the sound: the network is too slow',
    'call.tile.connecting': 'connecting…',
    'call.layer.q': 'low quality',
    'call.layer.h': 'medium quality',
    'call.layer.f': 'high quality',
    'call.layer.paused': 'paused: low bandwidth',
    'call.role.commander': 'commander',
    'call.role.operator': 'operator',
    'call.role.responder': 'responder',
    'call.role.camera': 'camera',
    'call.role.wall': 'wall',
    'call.role.reviewer': 'reviewer',
    'call.media.insecure': 'This browser cannot open a camera here (the page needs https or localhost). You can still watch and listen.',
    'call.media.only-camera': 'Only your camera works: {reason}',
    'call.media.only-microphone': 'Only your microphone works: {reason}',
    'call.media.unavailable': 'Camera and microphone are unavailable ({name}: {reason}). You can still watch and listen.',
    'call.sig.used': 'this signalling connection was already used',
    'call.sig.join-timeout': 'no answer to the join within {secs} s; check the network',
    'call.sig.cannot-open': 'cannot open {url}: {reason}',
    'call.sig.join-refused': 'the server refused to join',
    'call.sig.closed-early': 'the server closed the connection before answering the join (code {code}); check the address and the network',
    'call.sig.server-closed': 'the server closed the connection',
    'call.sig.broke': 'the connection broke (code {code})',
    'call.sig.not-connected': 'not connected to the room',
    'call.sig.no-reply': 'no {want} to {type} within {secs} s',
    'call.sig.refused': 'refused',
    'call.sig.bye': 'the server ended the call',
    'call.sig.moved': 'the call moved to another server',
    'call.sig.silent': 'no answer from the server for {secs} s',
    'call.sig.ended': 'the connection ended: {reason}',
    'call.sig.dropped': 'dropped',
    'call.sig.left': 'left',
  },
  'zh-TW': {
    'call.title': '通話',
    'call.title.room': '通話 · {room}',
    'call.rec': '● 錄影中',
    'call.rec.title': '此通話中發布的影音都會錄影',
    'call.controls': '通話控制',
    'call.mic.mute': '關閉麥克風',
    'call.mic.unmute': '開啟麥克風',
    'call.camera.stop': '關閉攝影機',
    'call.camera.start': '開啟攝影機',
    'call.screen.share': '分享畫面',
    'call.screen.stop': '停止分享',
    'call.fields': '現場攝影機',
    'call.fields.empty': '目前沒有此權杖可檢視的現場攝影機在直播。',
    'call.fields.pin': '釘選 {name}',
    'call.fields.unpin': '取消釘選 {name}',
    'call.sound.enable': '點此啟用聲音',
    'call.leave': '離開',
    'call.join.heading': '加入通話',
    'call.join.room': '通話室',
    'call.join.name': '您的名稱，其他人會看到（選填）',
    'call.join.token': '存取權杖',
    'call.join.keep-token': '沿用先前提供的權杖',
    'call.join.submit': '加入',
    'call.join.again': '重新加入',
    'call.join.need-room': '請輸入要加入的通話室。',
    'call.join.need-both': '加入通話需要存取權杖與通話室名稱。',
    'call.join.bad-room': '請輸入通話室：1 到 64 個英文字母、數字、「.」、「_」或「-」。',
    'call.join.need-token': '請貼上您取得的存取權杖。',
    'call.join.unreachable': '無法連上通話伺服器：{reason}',
    'call.join.refused': '伺服器拒絕加入：{reason}',
    'call.joining': '正在加入 {room}…',
    'call.watch-only': '您的權杖只能觀看與收聽。',
    'call.count': '通話中共 {n} 人',
    'call.left': '您已離開通話。',
    'call.ended': '通話已結束：{reason}',
    'call.lost': '連線中斷（{reason}），正在重新連線…',
    'call.rejoining': '伺服器已不再保留此通話，正在重新加入…',
    'call.reconnecting': '正在重新連線…（{reason}）',
    'call.request-refused': '伺服器拒絕了一項請求：{reason}',
    'call.receive-failed': '無法接收其他人的影音：{reason}',
    'call.send-failed': '無法傳送您的攝影機與麥克風：{reason}',
    'call.screen.failed': '畫面分享未能開始：{reason}',
    'call.screen.send-failed': '無法傳送您分享的畫面：{reason}',
    'call.stage.badge': '現場攝影機',
    'call.stage.sound-on': '開啟聲音',
    'call.stage.sound-off': '關閉聲音',
    'call.stage.unpin': '取消釘選',
    'call.stage.cannot-show': '無法顯示此攝影機：{reason}',
    'call.stage.no-sound': '沒有聲音：{reason}',
    'call.stage.went-away': '現場攝影機已離開：{reason}。',
    'call.stage.stopped': '已停止',
    'call.stage.ended': '現場攝影機已結束：{reason}。',
    'call.stage.offline': '此現場攝影機已離線。',
    'call.stage.paused': '影像已暫停：網路太慢。',
    'call.stage.connecting': '連線中…',
    'call.tile.you': '{name}（您）',
    'call.tile.screen': '{name} — 分享畫面',
    'call.tile.mic-off': '麥克風已關',
    'call.tile.camera-off': '攝影機已關',
    'call.tile.screen-starting': '畫面分享啟動中…',
    'call.tile.no-camera': '沒有攝影機',
    'call.tile.paused': '網路太慢，已暫停影像以保留聲音',
    'call.tile.connecting': '連線中…',
    'call.layer.q': '低畫質',
    'call.layer.h': '中畫質',
    'call.layer.f': '高畫質',
    'call.layer.paused': '已暫停：頻寬不足',
    'call.role.commander': '指揮官',
    'call.role.operator': '操作員',
    'call.role.responder': '救災人員',
    'call.role.camera': '攝影機',
    'call.role.wall': '電視牆',
    'call.role.reviewer': '回放審查員',
    'call.media.insecure': '此瀏覽器無法在這裡開啟攝影機（頁面需要 https 或 localhost）。您仍可觀看與收聽。',
    'call.media.only-camera': '只有您的攝影機可用：{reason}',
    'call.media.only-microphone': '只有您的麥克風可用：{reason}',
    'call.media.unavailable': '無法使用攝影機與麥克風（{name}：{reason}）。您仍可觀看與收聽。',
    'call.sig.used': '此信令連線已經用過',
    'call.sig.join-timeout': '加入請求 {secs} 秒內沒有回應，請檢查網路',
    'call.sig.cannot-open': '無法開啟 {url}：{reason}',
    'call.sig.join-refused': '伺服器拒絕加入',
    'call.sig.closed-early': '伺服器在回應加入請求前就關閉了連線（代碼 {code}），請檢查網址與網路',
    'call.sig.server-closed': '伺服器關閉了連線',
    'call.sig.broke': '連線異常中斷（代碼 {code}）',
    'call.sig.not-connected': '尚未連上通話室',
    'call.sig.no-reply': '{type} 請求在 {secs} 秒內沒有收到 {want} 回應',
    'call.sig.refused': '已拒絕',
    'call.sig.bye': '伺服器結束了通話',
    'call.sig.moved': '通話已移至另一台伺服器',
    'call.sig.silent': '伺服器已 {secs} 秒沒有回應',
    'call.sig.ended': '連線已結束：{reason}',
    'call.sig.dropped': '已放棄連線',
    'call.sig.left': '已離開',
  },
};

register(CALL_STRINGS);

// Said is a message of the page: a key and its vars, rendered in the language in use each
// time it is turned into a string.
export class Said {
  constructor(key, vars = {}) {
    this.key = key;
    this.vars = vars;
  }

  toString() {
    return t(this.key, this.vars);
  }
}

// said returns the Said of key with vars.
export function said(key, vars) {
  return new Said(key, vars);
}

// roleName names a participant's role for people; a role the page does not know is shown as
// the server gave it.
export function roleName(role) {
  if (!role) return '';
  const key = `call.role.${role}`;
  const name = t(key);
  return name === key ? role : name;
}

// displayName is a typed name as the server takes it: without controls or the marks that
// reorder or hide text, at most 256 bytes.
export function displayName(raw) {
  let name = raw.replace(/[\p{Cc}\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu, '').trim();
  while (new TextEncoder().encode(name).length > 256) name = name.slice(0, -1);
  return name;
}
