// Rooms: the channels joined on one topic, kept apart by privacy as Realtime does
// (`<tenant>:<sub>` and `<tenant>-private:<sub>`), with that room's presence. Fan-out happens
// here, and each channel's read permission decides whether it is handed a message.
import { Broadcast, type Frame } from "./broadcast.ts";
import { type PresenceDiff, RoomPresence } from "./presence.ts";
import { encodeMessage, type Vsn } from "./serializer.ts";

export interface Subscriber {
  readonly vsn: Vsn;
  /** Public channels always; private ones with broadcast read (and not already replayed). */
  receivesBroadcast(message: Broadcast): boolean;
  /** Public channels always; private ones with presence read. */
  receivesPresence(): boolean;
  sendFrame(frame: Frame): void;
}

export class Room {
  readonly subscribers = new Set<Subscriber>();
  readonly presence = new RoomPresence<Subscriber>();

  constructor(
    readonly isPrivate: boolean,
    readonly subTopic: string,
  ) {}

  get joinTopic() {
    return `realtime:${this.subTopic}`;
  }

  /** Delivers to every subscriber allowed to read broadcasts; `except` is the sender when self is off. */
  broadcast(message: Broadcast, except?: Subscriber): number {
    let delivered = 0;
    for (const s of this.subscribers) {
      if (s === except || !s.receivesBroadcast(message)) continue;
      const frame = message.frame(s.vsn);
      if (frame === null) continue;
      s.sendFrame(frame);
      delivered++;
    }
    return delivered;
  }

  /** presence_diff goes to everyone with presence read, the tracking channel included. */
  presenceDiff(diff: PresenceDiff): void {
    const frames = new Map<Vsn, string>();
    for (const s of this.subscribers) {
      if (!s.receivesPresence()) continue;
      let frame = frames.get(s.vsn);
      if (!frame) {
        frame = encodeMessage(s.vsn, null, null, this.joinTopic, "presence_diff", diff);
        frames.set(s.vsn, frame);
      }
      s.sendFrame(frame);
    }
  }
}

export class Rooms {
  private readonly rooms = new Map<string, Room>();

  private static key(isPrivate: boolean, subTopic: string) {
    return `${isPrivate ? "private" : "public"}:${subTopic}`;
  }

  find(isPrivate: boolean, subTopic: string): Room | undefined {
    return this.rooms.get(Rooms.key(isPrivate, subTopic));
  }

  enter(isPrivate: boolean, subTopic: string, s: Subscriber): Room {
    const key = Rooms.key(isPrivate, subTopic);
    let room = this.rooms.get(key);
    if (!room) {
      room = new Room(isPrivate, subTopic);
      this.rooms.set(key, room);
    }
    room.subscribers.add(s);
    return room;
  }

  leave(room: Room, s: Subscriber): void {
    room.subscribers.delete(s);
    if (room.subscribers.size === 0) this.rooms.delete(Rooms.key(room.isPrivate, room.subTopic));
  }

  /** A broadcast to a topic from outside any socket (the database, the REST API). */
  publish(isPrivate: boolean, subTopic: string, body: Broadcast["body"]): number {
    const room = this.find(isPrivate, subTopic);
    return room ? room.broadcast(new Broadcast(room.joinTopic, body)) : 0;
  }
}
